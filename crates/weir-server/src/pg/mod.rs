//! The PostgreSQL wire endpoint (`[server] pg_listen`, default 127.0.0.1:5433): `psql`,
//! Grafana, DBeaver, Metabase and any PostgreSQL driver run DataFusion SQL over every table of
//! the lake, through the simple and the extended query protocol. It is read-only. Without
//! `[server.auth]` any user and database name is accepted; with it, the password is a token.

mod catalog;
mod encode;
mod rewrite;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::{Sink, stream};
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use weir_orchestrator::Weir;
use weir_sql::query::QuerySession;

use crate::auth::Auth;
use rewrite::Action;

/// An error the client sees, with its SQLSTATE.
pub(crate) fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

fn df_error(e: DataFusionError) -> PgWireError {
    let text = e.to_string();
    let code = match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..)
            if text.contains("not found") && text.contains("table") =>
        {
            "42P01"
        }
        DataFusionError::SchemaError(..) => "42703",
        DataFusionError::Plan(m) if m.contains("function") => "42883",
        DataFusionError::Plan(_) => "42000",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => "22000",
        DataFusionError::ResourcesExhausted(_) => "53000",
        _ => "XX000",
    };
    user_error(code, text)
}

/// A parsed statement, with what it returns once planned.
#[derive(Debug, Clone)]
pub struct PgStatement {
    action: Action,
    /// Result columns (name, Arrow type), when known before running.
    columns: Vec<(String, DataType)>,
    /// Parameter types DataFusion infers from where each `$n` is used.
    params: Vec<Option<DataType>>,
}

/// The state shared by every connection.
struct Engine {
    weir: Arc<Weir>,
    database: String,
    session: tokio::sync::OnceCell<QuerySession>,
    catalog: Mutex<Option<(Instant, Arc<Vec<catalog::Relation>>)>>,
}

/// How long a built catalog answers before it is built again from the lake.
const CATALOG_TTL: Duration = Duration::from_secs(2);

impl Engine {
    async fn session(&self) -> PgWireResult<&QuerySession> {
        self.session
            .get_or_try_init(|| async {
                let views = crate::batch_views(&self.weir);
                let (session, skipped) = QuerySession::try_new(self.weir.lake().clone(), &views)
                    .await
                    .map_err(|e| user_error("XX000", e.to_string()))?;
                for s in skipped {
                    tracing::info!(view = %s, "pg endpoint: batch table not queryable yet");
                }
                catalog::register_functions(session.context(), &self.database);
                Ok(session)
            })
            .await
    }

    /// The lake's relations, rebuilding `pg_catalog` when it is older than [`CATALOG_TTL`].
    async fn relations(&self) -> PgWireResult<Arc<Vec<catalog::Relation>>> {
        if let Ok(guard) = self.catalog.lock()
            && let Some((at, rels)) = guard.as_ref()
            && at.elapsed() < CATALOG_TTL
        {
            return Ok(rels.clone());
        }
        let session = self.session().await?;
        let ctx = session.context();
        let schema = ctx
            .catalog("weir")
            .and_then(|c| c.schema("public"))
            .ok_or_else(|| user_error("XX000", "the lake schema is missing".into()))?;
        let mut tables = Vec::new();
        for name in schema.table_names() {
            // A table that cannot be opened right now (being created) is left out.
            let Ok(Some(t)) = schema.table(&name).await else {
                continue;
            };
            let kind = if t.table_type() == TableType::View {
                "v"
            } else {
                "r"
            };
            tables.push((name, kind, TableProvider::schema(t.as_ref())));
        }
        let rels = Arc::new(catalog::relations(tables));
        let built = catalog::build(&rels, &self.database).map_err(df_error)?;
        if let Some(c) = ctx.catalog("weir") {
            c.register_schema("pg_catalog", built).map_err(df_error)?;
        }
        catalog::remember_relations(&rels);
        if let Ok(mut guard) = self.catalog.lock() {
            *guard = Some((Instant::now(), rels.clone()));
        }
        Ok(rels)
    }

    /// Parses `sql` into its statements.
    fn parse(sql: &str) -> PgWireResult<Vec<Statement>> {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .map_err(|e| user_error("42601", format!("syntax error: {e}")))
    }

    /// What to do with one statement.
    async fn prepare(&self, stmt: Statement) -> PgWireResult<PgStatement> {
        let rels = if rewrite::reads_catalog(&stmt) {
            self.relations().await?
        } else {
            Arc::new(Vec::new())
        };
        let action = rewrite::action(stmt, &rels)
            .map_err(|rewrite::Refusal(code, m)| user_error(code, m))?;
        let (columns, params) = match &action {
            Action::Query(stmt) => {
                let session = self.session().await?;
                let plan = session
                    .context()
                    .state()
                    .statement_to_plan(DfStatement::Statement(stmt.clone()))
                    .await
                    .map_err(df_error)?;
                let columns = plan
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().clone()))
                    .collect();
                let types = plan.get_parameter_types().map_err(df_error)?;
                let mut params = vec![None; types.len()];
                for (id, t) in types {
                    if let Some(n) = id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
                        && (1..=params.len()).contains(&n)
                    {
                        params[n - 1] = t;
                    }
                }
                (columns, params)
            }
            Action::Empty(cols) => (
                cols.iter().map(|c| (c.clone(), DataType::Utf8)).collect(),
                Vec::new(),
            ),
            Action::Show(name, _) => (vec![(name.clone(), DataType::Utf8)], Vec::new()),
            Action::Command(_) => (Vec::new(), Vec::new()),
        };
        Ok(PgStatement {
            action,
            columns,
            params,
        })
    }

    /// Runs a prepared statement with `params` bound to its `$n`.
    async fn execute(
        &self,
        stmt: &PgStatement,
        params: Vec<ScalarValue>,
        format: &Format,
    ) -> PgWireResult<Response> {
        match &stmt.action {
            Action::Command(tag) => Ok(match tag.as_str() {
                "BEGIN" => Response::TransactionStart(Tag::new(tag)),
                "COMMIT" | "ROLLBACK" => Response::TransactionEnd(Tag::new(tag)),
                _ => Response::Execution(Tag::new(tag)),
            }),
            Action::Empty(_) => {
                let fields = Arc::new(column_fields(&stmt.columns, format));
                Ok(Response::Query(QueryResponse::new(fields, stream::empty())))
            }
            Action::Show(name, value) => {
                let schema = Arc::new(arrow::datatypes::Schema::new(vec![
                    arrow::datatypes::Field::new(name, DataType::Utf8, false),
                ]));
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(arrow::array::StringArray::from(vec![
                        value.clone(),
                    ]))],
                )
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                respond(&schema, &[batch], format)
            }
            Action::Query(q) => {
                if rewrite::reads_catalog(q) {
                    self.relations().await?;
                }
                let session = self.session().await?;
                let ctx = session.context();
                // Planned again so every execution reads the tables' newest snapshots.
                let plan = ctx
                    .state()
                    .statement_to_plan(DfStatement::Statement(q.clone()))
                    .await
                    .map_err(df_error)?;
                let mut df = ctx.execute_logical_plan(plan).await.map_err(df_error)?;
                if !params.is_empty() {
                    df = df.with_param_values(params).map_err(df_error)?;
                }
                let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await.map_err(df_error)?;
                respond(&schema, &batches, format)
            }
        }
    }
}

fn column_fields(cols: &[(String, DataType)], format: &Format) -> Vec<FieldInfo> {
    encode::fields(cols.iter().map(|(n, t)| (n.as_str(), t)), format)
}

fn respond(schema: &SchemaRef, batches: &[RecordBatch], format: &Format) -> PgWireResult<Response> {
    let fields = Arc::new(encode::fields(
        schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type())),
        format,
    ));
    let rows = encode::rows(batches, fields.clone())?;
    Ok(Response::Query(QueryResponse::new(
        fields,
        stream::iter(rows.into_iter().map(Ok)),
    )))
}

/// The query handlers of one server (shared by its connections).
pub struct Handlers {
    engine: Arc<Engine>,
    parser: Arc<StatementParser>,
}

/// Everything a connection is served with.
pub struct Server {
    queries: Arc<Handlers>,
    startup: Arc<Startup>,
}

pub struct StatementParser {
    engine: Arc<Engine>,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = Engine::parse(sql)?;
        if stmts.len() > 1 {
            return Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement".into(),
            ));
        }
        match stmts.pop() {
            None => Ok(None),
            Some(s) => self.engine.prepare(s).await.map(Some),
        }
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .params
            .iter()
            .map(|t| t.as_ref().map_or(Type::UNKNOWN, encode::pg_type))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(column_fields(
            &stmt.columns,
            column_format.unwrap_or(&Format::UnifiedText),
        ))
    }
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut out = Vec::new();
        for stmt in Engine::parse(query)? {
            let result = match self.engine.prepare(stmt).await {
                Ok(p) => {
                    self.engine
                        .execute(&p, Vec::new(), &Format::UnifiedText)
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(r) => out.push(r),
                Err(PgWireError::UserError(info)) => {
                    // Like PostgreSQL: the failing statement ends the batch.
                    out.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = PgStatement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let mut params = Vec::with_capacity(portal.parameter_len());
        for i in 0..portal.parameter_len() {
            let declared = portal
                .statement
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or(Type::UNKNOWN);
            let target = stmt.params.get(i).and_then(Option::as_ref);
            params.push(encode::parameter(portal, i, &declared, target)?);
        }
        self.engine
            .execute(stmt, params, &portal.result_column_format)
            .await
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<PgStatement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let inferred = self.parser.get_parameter_types(&target.statement)?;
        let n = inferred.len().max(target.parameter_types.len());
        let params = (0..n)
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| inferred.get(i).cloned())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        let fields = self.parser.get_result_schema(&target.statement, None)?;
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<PgStatement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = self.parser.get_result_schema(
            &portal.statement.statement,
            Some(&portal.result_column_format),
        )?;
        Ok(DescribePortalResponse::new(fields))
    }
}

/// Startup: no password without auth; with auth, the password must be a token.
pub struct Startup {
    params: Arc<DefaultServerParameterProvider>,
    pids: RandomPidSecretKeyGenerator,
    with_auth: Option<
        CleartextPasswordAuthStartupHandler<TokenSource, Arc<DefaultServerParameterProvider>>,
    >,
}

#[derive(Debug)]
pub struct TokenSource {
    auth: Arc<Auth>,
}

#[async_trait]
impl AuthSource for TokenSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented: &[u8],
    ) -> PgWireResult<Option<()>> {
        let token = std::str::from_utf8(presented).unwrap_or("");
        match self.auth.role_of(token) {
            Some(_) => Ok(None),
            None => {
                tracing::warn!(
                    user = login.user().unwrap_or(""),
                    host = login.host(),
                    "pg endpoint: refused a connection with a wrong token"
                );
                Err(PgWireError::InvalidPassword(
                    login.user().unwrap_or_default().to_owned(),
                ))
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(h) = &self.with_auth {
            return h.on_startup(client, message).await;
        }
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            let (pid, key) = self.pids.generate(client);
            client.set_pid_and_secret_key(pid, key);
            finish_authentication(client, self.params.as_ref()).await?;
        }
        Ok(())
    }
}

impl PgWireServerHandlers for Server {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Binds `listen` and serves the PostgreSQL protocol until `shutdown` resolves.
pub async fn serve(
    weir: Arc<Weir>,
    auth: Option<Arc<Auth>>,
    listen: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let database = weir.project().config.project.name.clone();
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = format!("16.0 (weir {})", env!("CARGO_PKG_VERSION"));
    params.is_superuser = false;
    params.default_transaction_read_only = true;
    params.time_zone = "UTC".into();
    let params = Arc::new(params);
    let with_auth = auth
        .map(|a| CleartextPasswordAuthStartupHandler::new(TokenSource { auth: a }, params.clone()));
    let engine = Arc::new(Engine {
        weir,
        database,
        session: tokio::sync::OnceCell::new(),
        catalog: Mutex::new(None),
    });
    let handlers = Arc::new(Server {
        queries: Arc::new(Handlers {
            parser: Arc::new(StatementParser {
                engine: engine.clone(),
            }),
            engine,
        }),
        startup: Arc::new(Startup {
            params,
            pids: RandomPidSecretKeyGenerator::default(),
            with_auth,
        }),
    });
    tokio::spawn(async move {
        let mut shutdown = Box::pin(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => {
                        let h = handlers.clone();
                        tokio::spawn(async move {
                            if let Err(e) = pgwire::tokio::process_socket(socket, None, h).await {
                                tracing::debug!(error = %e, "pg connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pg endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    });
    Ok(addr)
}
