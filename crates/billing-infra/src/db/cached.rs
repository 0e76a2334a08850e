//! Statements kept prepared on their connection, where diesel would prepare them anew at every execution.
//!
//! Diesel keeps a connection's prepared statements only for queries it can prove come in a bounded number of
//! shapes: every `UPDATE`, every insert of a struct with an `Option` field (`DEFAULT` or a bind), every
//! `ON CONFLICT … DO UPDATE` and every `sql_query` is prepared, run and closed each time. With diesel-async that
//! is an extra round trip (`Parse`/`Describe`, then `Bind`/`Execute`) and PostgreSQL parses, analyses and plans
//! the statement again: measured, 12 of the 17 statements of a payment were such. Each of our call sites has a
//! handful of shapes at most, so keeping them is bounded: wrapped in [`Cached`], a statement is kept by its SQL
//! text and bind types like any `SELECT`, and later executions only bind and execute it.
//!
//! Leave alone a statement diesel keeps by itself (a `SELECT`, a `DELETE`, an insert of plain values): it is kept
//! by its type, and wrapped it would be kept by its SQL text, built again at every execution.
//!
//! Do not wrap a statement whose SQL text grows with its input (an `IN` list outside PostgreSQL, a batch insert
//! of a varying number of rows): each length would be kept as a statement of its own.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A statement that stays prepared on its connection after its first execution (see the module's note).
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(Q);

/// `.cached()` on any statement: keep it prepared on the connection.
pub trait CachedDsl: Sized {
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q> CachedDsl for Q {}

impl<Q> QueryId for Cached<Q> {
    // No static id: the statement is kept by its SQL text, which tells apart the shapes one call site can take.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}
