//! What a PostgreSQL client sends, made into something DataFusion runs: session commands are
//! acknowledged, writes refused, `SHOW` answered, and queries rewritten where PostgreSQL
//! syntax differs (`OPERATOR(pg_catalog.~)`, `COLLATE`, `pg_catalog.`-qualified functions,
//! `::regclass` / `::regtype` / `::oid` casts). A query whose rows all come from a catalog weir
//! keeps empty (policies, triggers, publications, ...) is answered as empty without being
//! planned, so the catalog queries of `psql`'s `\d` work whatever syntax they use.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType as SqlType, Expr, Function, FunctionArguments, GroupByExpr,
    Ident, JoinOperator, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, SetOperator,
    Statement, TableFactor, Value, Visit, Visitor, visit_expressions_mut, visit_relations,
    visit_relations_mut,
};

use super::catalog::{self, Relation};

/// What to do with one statement.
#[derive(Debug, Clone)]
pub enum Action {
    /// Plan and run it with DataFusion.
    Query(Box<Statement>),
    /// A query known to return no rows, with these column names.
    Empty(Vec<String>),
    /// A session command acknowledged with this tag.
    Command(String),
    /// `SHOW name`: one row, one column.
    Show(String, String),
}

/// An error for the client: SQLSTATE and message.
#[derive(Debug)]
pub struct Refusal(pub &'static str, pub String);

/// Whether `stmt` reads a catalog (so the catalog tables are rebuilt before planning it).
pub fn reads_catalog(stmt: &Statement) -> bool {
    let mut found = false;
    let _ = visit_relations(stmt, |name: &ObjectName| {
        let parts = parts(name);
        if parts
            .iter()
            .any(|p| p == "pg_catalog" || p == "information_schema")
            || parts.last().is_some_and(|p| catalog::is_catalog_name(p))
        {
            found = true;
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Decides what to do with `stmt`; `rels` are the lake's relations (for `'name'::regclass`).
pub fn action(mut stmt: Statement, rels: &[Relation]) -> Result<Action, Refusal> {
    match &stmt {
        Statement::Query(_) | Statement::Explain { .. } => {}
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(".");
            return match catalog::setting(&name) {
                Some(v) => Ok(Action::Show(name, v.to_owned())),
                None => Err(Refusal(
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )),
            };
        }
        Statement::Set(_) => return Ok(Action::Command("SET".into())),
        Statement::StartTransaction { .. } => return Ok(Action::Command("BEGIN".into())),
        Statement::Commit { .. } => return Ok(Action::Command("COMMIT".into())),
        Statement::Rollback { .. } => return Ok(Action::Command("ROLLBACK".into())),
        Statement::Discard { .. } => return Ok(Action::Command("DISCARD ALL".into())),
        Statement::Deallocate { .. } => return Ok(Action::Command("DEALLOCATE".into())),
        Statement::Close { .. } => return Ok(Action::Command("CLOSE CURSOR".into())),
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Copy { .. }
        | Statement::CreateTable(_)
        | Statement::CreateView(_)
        | Statement::CreateIndex(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::Drop { .. }
        | Statement::Truncate(_)
        | Statement::AlterTable(_)
        | Statement::Merge(_) => {
            return Err(Refusal(
                "25006",
                "weir's SQL endpoint is read-only: tables are written by the pipeline \
                 (sources and the SQL in weir.toml), not by clients"
                    .into(),
            ));
        }
        other => {
            let text = other.to_string();
            let word = text.split_whitespace().next().unwrap_or("").to_uppercase();
            return Err(Refusal(
                "0A000",
                format!(
                    "weir's SQL endpoint does not support {word} statements; it runs queries (SELECT, WITH, VALUES, EXPLAIN, SHOW)"
                ),
            ));
        }
    }
    qualify_catalog_tables(&mut stmt);
    if let Statement::Query(q) = &stmt
        && is_empty(q)
    {
        return Ok(Action::Empty(column_names(q)));
    }
    if let Statement::Query(q) = &mut stmt {
        name_columns(q);
    }
    let mut failure = None;
    let _ = visit_expressions_mut(&mut stmt, |e: &mut Expr| {
        if let Err(r) = rewrite_expr(e, rels) {
            failure = Some(r);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(f) = failure {
        return Err(f);
    }
    Ok(Action::Query(Box::new(stmt)))
}

fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
            ObjectNamePart::Function(f) => f.name.value.to_ascii_lowercase(),
        })
        .collect()
}

/// `pg_class` → `pg_catalog.pg_class`, as PostgreSQL's search path resolves it.
fn qualify_catalog_tables(stmt: &mut Statement) {
    let _ = visit_relations_mut(stmt, |name: &mut ObjectName| {
        let p = parts(name);
        if p.len() == 1 && catalog::is_catalog_name(&p[0]) {
            name.0
                .insert(0, ObjectNamePart::Identifier(Ident::new("pg_catalog")));
        }
        ControlFlow::<()>::Continue(())
    });
}

fn empty_relation(t: &TableFactor) -> bool {
    match t {
        TableFactor::Table {
            name, args: None, ..
        } => {
            let p = parts(name);
            p.len() == 2 && p[0] == "pg_catalog" && catalog::is_empty_catalog(&p[1])
        }
        TableFactor::Derived { subquery, .. } => is_empty(subquery),
        _ => false,
    }
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "bool_and",
    "bool_or",
    "string_agg",
    "array_agg",
    "json_agg",
    "every",
];

/// Finds aggregate calls of the query being looked at, not of its subqueries.
struct AggregateFinder {
    depth: usize,
    found: bool,
}

impl Visitor for AggregateFinder {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth == 0
            && let Expr::Function(f) = e
            && parts(&f.name)
                .last()
                .is_some_and(|n| AGGREGATES.contains(&n.as_str()))
        {
            self.found = true;
        }
        ControlFlow::Continue(())
    }
}

fn has_aggregate(items: &[SelectItem]) -> bool {
    let mut finder = AggregateFinder {
        depth: 0,
        found: false,
    };
    for item in items {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            let _ = e.visit(&mut finder);
        }
    }
    finder.found
}

/// Whether `q` returns no rows because a relation every row needs is an empty catalog.
pub fn is_empty(q: &Query) -> bool {
    set_is_empty(&q.body)
}

fn set_is_empty(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(sel) => {
            let grouped = !matches!(&sel.group_by, GroupByExpr::Expressions(v, _) if v.is_empty());
            if !grouped && has_aggregate(&sel.projection) {
                return false;
            }
            sel.from.iter().any(|twj| {
                empty_relation(&twj.relation)
                    || twj.joins.iter().any(|j| {
                        matches!(
                            j.join_operator,
                            JoinOperator::Join(_)
                                | JoinOperator::Inner(_)
                                | JoinOperator::CrossJoin(_)
                                | JoinOperator::Semi(_)
                                | JoinOperator::LeftSemi(_)
                                | JoinOperator::RightSemi(_)
                        ) && empty_relation(&j.relation)
                    })
            })
        }
        SetExpr::Query(q) => is_empty(q),
        SetExpr::SetOperation {
            op, left, right, ..
        } => match op {
            SetOperator::Union => set_is_empty(left) && set_is_empty(right),
            SetOperator::Intersect => set_is_empty(left) || set_is_empty(right),
            _ => set_is_empty(left),
        },
        _ => false,
    }
}

/// The column names PostgreSQL would give `q`'s result.
fn column_names(q: &Query) -> Vec<String> {
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = &q.body,
            _ => break,
        }
    }
    let SetExpr::Select(sel) = body else {
        return Vec::new();
    };
    sel.projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(e) => expr_name(e),
            _ => "?column?".into(),
        })
        .collect()
}

/// Gives unnamed result columns the names PostgreSQL gives them (`count`, not `count(*)`;
/// `?column?` for other expressions), where that name is unique in the result.
fn name_columns(q: &mut Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else {
        return;
    };
    let names: Vec<String> = sel
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
            SelectItem::UnnamedExpr(e) => expr_name(e),
            _ => String::new(),
        })
        .collect();
    for (i, item) in sel.projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(e) = item else {
            continue;
        };
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            continue;
        }
        let name = &names[i];
        if names.iter().filter(|n| *n == name).count() > 1 {
            continue;
        }
        *item = SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::with_quote('"', name.clone()),
        };
    }
}

fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(v) => v.last().map_or("?column?".into(), |i| i.value.clone()),
        Expr::Function(f) => parts(&f.name).pop().unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::Collate { expr, .. } => {
            expr_name(expr)
        }
        _ => "?column?".into(),
    }
}

fn lit_str(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn number(n: i64) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArgumentList};
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// The PostgreSQL type name of a cast target, lower case, without `pg_catalog.`.
fn cast_target(t: &SqlType) -> Option<String> {
    match t {
        SqlType::Regclass => Some("regclass".into()),
        SqlType::Custom(name, _) => parts(name).pop(),
        _ => None,
    }
}

fn rewrite_expr(e: &mut Expr, rels: &[Relation]) -> Result<(), Refusal> {
    match e {
        Expr::Collate { expr, .. } => {
            *e = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
        }
        Expr::BinaryOp { op, .. } => {
            if let BinaryOperator::PGCustomBinaryOperator(names) = op {
                let sym = names.last().map(String::as_str).unwrap_or("");
                *op = match sym {
                    "~" => BinaryOperator::PGRegexMatch,
                    "~*" => BinaryOperator::PGRegexIMatch,
                    "!~" => BinaryOperator::PGRegexNotMatch,
                    "!~*" => BinaryOperator::PGRegexNotIMatch,
                    "~~" => BinaryOperator::PGLikeMatch,
                    "!~~" => BinaryOperator::PGNotLikeMatch,
                    "=" => BinaryOperator::Eq,
                    "<>" => BinaryOperator::NotEq,
                    "<" => BinaryOperator::Lt,
                    ">" => BinaryOperator::Gt,
                    "<=" => BinaryOperator::LtEq,
                    ">=" => BinaryOperator::GtEq,
                    other => {
                        return Err(Refusal(
                            "42883",
                            format!("operator {other} is not supported"),
                        ));
                    }
                };
            }
        }
        Expr::Function(f) => {
            let p = parts(&f.name);
            if p.len() == 2 && p[0] == "pg_catalog" {
                f.name = ObjectName::from(vec![Ident::new(p[1].clone())]);
            }
            if let FunctionArguments::Subquery(q) = &f.args
                && is_empty(q)
            {
                *e = Expr::value(Value::Null);
            }
        }
        Expr::Subquery(q) if is_empty(q) => *e = Expr::value(Value::Null),
        Expr::Exists { subquery, negated } if is_empty(subquery) => {
            *e = Expr::value(Value::Boolean(*negated));
        }
        Expr::InSubquery {
            subquery, negated, ..
        } if is_empty(subquery) => {
            *e = Expr::value(Value::Boolean(*negated));
        }
        Expr::Cast {
            expr, data_type, ..
        } => {
            let Some(target) = cast_target(data_type) else {
                return Ok(());
            };
            let inner = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
            *e = match target.as_str() {
                "regclass" => match lit_str(&inner) {
                    Some(name) => match catalog::oid_of(rels, name) {
                        Some(oid) => number(oid),
                        None => {
                            return Err(Refusal(
                                "42P01",
                                format!("relation \"{name}\" does not exist"),
                            ));
                        }
                    },
                    None => call("weir_relname", vec![inner]),
                },
                "regtype" => match lit_str(&inner) {
                    Some(name) => match catalog::type_oid(name) {
                        Some(oid) => number(oid),
                        None => {
                            return Err(Refusal(
                                "42704",
                                format!("type \"{name}\" does not exist"),
                            ));
                        }
                    },
                    None => call("format_type", vec![inner, Expr::value(Value::Null)]),
                },
                "regnamespace" => match lit_str(&inner) {
                    Some("pg_catalog") => number(catalog::NS_CATALOG),
                    Some("public") => number(catalog::NS_PUBLIC),
                    Some("information_schema") => number(catalog::NS_INFORMATION),
                    Some(other) => {
                        return Err(Refusal(
                            "3F000",
                            format!("schema \"{other}\" does not exist"),
                        ));
                    }
                    None => Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(inner),
                        data_type: SqlType::Text,
                        array: false,
                        format: None,
                    },
                },
                "oid" | "regproc" | "xid" | "int4" | "int8" | "int2" => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(inner),
                    data_type: SqlType::BigInt(None),
                    array: false,
                    format: None,
                },
                "text" | "name" | "char" | "varchar" | "bpchar" => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(inner),
                    data_type: SqlType::Text,
                    array: false,
                    format: None,
                },
                _ => Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(inner),
                    data_type: data_type.clone(),
                    array: false,
                    format: None,
                },
            };
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn one(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap()
    }

    #[test]
    fn psql_policy_query_is_empty_with_its_columns() {
        let sql = "SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) AS qual
FROM pg_catalog.pg_policy pol WHERE pol.polrelid = '16387' ORDER BY 1";
        match action(one(sql), &[]).unwrap() {
            Action::Empty(cols) => {
                assert_eq!(cols, ["polname", "polpermissive", "?column?", "qual"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn left_join_to_an_empty_catalog_is_not_empty() {
        let sql = "SELECT c.relname FROM pg_class c LEFT JOIN pg_description d ON d.objoid = c.oid";
        assert!(matches!(action(one(sql), &[]).unwrap(), Action::Query(_)));
        let sql = "SELECT count(*) FROM pg_index";
        assert!(matches!(action(one(sql), &[]).unwrap(), Action::Query(_)));
    }

    #[test]
    fn operator_collate_and_qualified_functions_are_rewritten() {
        let sql = "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid)";
        let Action::Query(q) = action(one(sql), &[]).unwrap() else {
            panic!()
        };
        let text = q.to_string();
        assert!(text.contains("c.relname ~ '^(t)$'"), "{text}");
        assert!(text.contains(" pg_table_is_visible(c.oid)"), "{text}");
        assert!(!text.contains("COLLATE"), "{text}");
    }

    #[test]
    fn writes_are_refused_and_session_commands_acknowledged() {
        let r = action(one("INSERT INTO t VALUES (1)"), &[]).unwrap_err();
        assert_eq!(r.0, "25006");
        assert!(
            matches!(action(one("SET datestyle = 'ISO'"), &[]).unwrap(), Action::Command(t) if t == "SET")
        );
        assert!(matches!(action(one("BEGIN"), &[]).unwrap(), Action::Command(t) if t == "BEGIN"));
        assert!(
            matches!(action(one("SHOW search_path"), &[]).unwrap(), Action::Show(_, v) if v == "public")
        );
        assert_eq!(action(one("SHOW nonsense"), &[]).unwrap_err().0, "42704");
    }
}

#[cfg(test)]
mod psql_queries {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    #[test]
    fn publication_union_is_empty() {
        let sql = "SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
     JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid
WHERE pc.oid ='16387' and pg_catalog.pg_relation_is_publishable('16387')
UNION
SELECT pubname
     , pg_get_expr(pr.prqual, c.oid)
     , (CASE WHEN pr.prattrs IS NOT NULL THEN
         (SELECT string_agg(attname, ', ')
           FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,
                pg_catalog.pg_attribute
          WHERE attrelid = pr.prrelid AND attnum = prattrs[s])
        ELSE NULL END) FROM pg_catalog.pg_publication p
     JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
     JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
WHERE pr.prrelid = '16387'
UNION
SELECT pubname
     , NULL
     , NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable('16387')
ORDER BY 1;";
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .pop()
            .unwrap();
        let a = action(stmt, &[]).unwrap();
        assert!(matches!(a, Action::Empty(_)), "{a:?}");
    }
}
