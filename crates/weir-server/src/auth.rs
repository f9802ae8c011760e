//! Tokens and roles (`[server.auth]`): the HTTP API takes `Authorization: Bearer <token>`,
//! the PostgreSQL endpoint takes the token as the password.

use weir_orchestrator::config::{AuthConfig, Role};

/// The tokens weir accepts.
#[derive(Debug)]
pub struct Auth {
    tokens: Vec<(String, String, Role)>,
}

impl Auth {
    /// Resolves every token of `config` (inline or from its environment variable).
    pub fn from_config(config: &AuthConfig) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for t in &config.tokens {
            tokens.push((t.name.clone(), t.resolve()?, t.role));
        }
        Ok(Self { tokens })
    }

    /// The role of `token`, compared in constant time so that timing tells nothing of it.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.holder(token).map(|(_, r)| r)
    }

    /// The name and role of `token`'s holder.
    pub fn holder(&self, token: &str) -> Option<(&str, Role)> {
        let mut found = None;
        for (name, value, role) in &self.tokens {
            if constant_time_eq(value.as_bytes(), token.as_bytes()) {
                found = Some((name.as_str(), *role));
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_orchestrator::config::TokenConfig;

    #[test]
    fn tokens_map_to_their_roles() {
        let auth = Auth::from_config(&AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "grafana".into(),
                    token: Some("r".repeat(20)),
                    token_env: None,
                    role: Role::Reader,
                },
                TokenConfig {
                    name: "ops".into(),
                    token: Some("o".repeat(20)),
                    token_env: None,
                    role: Role::Operator,
                },
            ],
        })
        .unwrap();
        assert_eq!(auth.role_of(&"r".repeat(20)), Some(Role::Reader));
        assert_eq!(auth.holder(&"o".repeat(20)), Some(("ops", Role::Operator)));
        assert_eq!(auth.role_of(&"r".repeat(19)), None);
        assert_eq!(auth.role_of(""), None);
    }

    #[test]
    fn short_or_missing_tokens_are_refused() {
        let short = AuthConfig {
            tokens: vec![TokenConfig {
                name: "x".into(),
                token: Some("short".into()),
                token_env: None,
                role: Role::Reader,
            }],
        };
        assert!(
            Auth::from_config(&short)
                .unwrap_err()
                .contains("at least 16")
        );
        let missing = AuthConfig {
            tokens: vec![TokenConfig {
                name: "x".into(),
                token: None,
                token_env: Some("WEIR_TEST_SURELY_UNSET_TOKEN".into()),
                role: Role::Reader,
            }],
        };
        assert!(
            Auth::from_config(&missing)
                .unwrap_err()
                .contains("WEIR_TEST_SURELY_UNSET_TOKEN")
        );
    }
}
