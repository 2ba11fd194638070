//! A thin layer that lets the store logic be written once for both backends.
//!
//! Why not sqlx's generic `Database` bounds: every function would repeat a dozen higher-ranked
//! encode/decode/executor bounds. Why not `sqlx::Any`: it cannot configure SQLite pragmas and
//! its placeholders differ by backend. Instead a [`Query`] is built with a small set of column
//! types ([`Value`]) that both backends bind natively through sqlx's `QueryBuilder` (which
//! writes `?` or `$n` as the backend wants), and a [`Row`] reads them back by index.

use lucid_core::{NodeId, UnixMillis};
use sqlx::{Postgres, Row as _, Sqlite};

use crate::error::Error;

/// A bound value. Only the column types the schema uses.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// BIGINT / INTEGER.
    Int(i64),
    /// SMALLINT / INTEGER (proof kinds).
    Small(i16),
    /// A nullable BIGINT.
    OptInt(Option<i64>),
    /// BYTEA / BLOB.
    Blob(Vec<u8>),
    /// A nullable BYTEA / BLOB.
    OptBlob(Option<Vec<u8>>),
    /// A nullable SMALLINT.
    OptSmall(Option<i16>),
    /// TEXT.
    Text(String),
    /// A nullable TEXT.
    OptText(Option<String>),
    /// BOOLEAN / INTEGER 0 or 1.
    Bool(bool),
}

/// Which backend a query is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Row counts to split `total` rows into for multi-row statements of at most `max_rows` rows:
/// powers of two, largest first. The driver caches prepared statements by their SQL text, so
/// batches of any size reuse a dozen statements instead of preparing a new one of their exact
/// size (a parse of thousands of placeholders) and evicting the useful ones from the cache.
pub(crate) fn row_chunks(total: usize, max_rows: usize) -> impl Iterator<Item = usize> {
    let largest = if max_rows == 0 { 1 } else { 1 << max_rows.ilog2() };
    let mut left = total;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= largest { largest } else { 1 << left.ilog2() };
        left -= size;
        Some(size)
    })
}

/// A query under construction for one backend.
pub(crate) enum Query {
    Sqlite(sqlx::QueryBuilder<'static, Sqlite>),
    Postgres(sqlx::QueryBuilder<'static, Postgres>),
}

impl Query {
    /// A query starting with `sql`.
    pub(crate) fn new(dialect: Dialect, sql: &str) -> Self {
        match dialect {
            Dialect::Sqlite => Query::Sqlite(sqlx::QueryBuilder::new(sql)),
            Dialect::Postgres => Query::Postgres(sqlx::QueryBuilder::new(sql)),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        match self {
            Query::Sqlite(builder) => {
                builder.push(sql);
            }
            Query::Postgres(builder) => {
                builder.push(sql);
            }
        }
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: Value) -> &mut Self {
        match self {
            Query::Sqlite(builder) => {
                match value {
                    Value::Int(v) => builder.push_bind(v),
                    Value::Small(v) => builder.push_bind(v),
                    Value::OptInt(v) => builder.push_bind(v),
                    Value::Blob(v) => builder.push_bind(v),
                    Value::OptBlob(v) => builder.push_bind(v),
                    Value::OptSmall(v) => builder.push_bind(v),
                    Value::Text(v) => builder.push_bind(v),
                    Value::OptText(v) => builder.push_bind(v),
                    Value::Bool(v) => builder.push_bind(v),
                };
            }
            Query::Postgres(builder) => {
                match value {
                    Value::Int(v) => builder.push_bind(v),
                    Value::Small(v) => builder.push_bind(v),
                    Value::OptInt(v) => builder.push_bind(v),
                    Value::Blob(v) => builder.push_bind(v),
                    Value::OptBlob(v) => builder.push_bind(v),
                    Value::OptSmall(v) => builder.push_bind(v),
                    Value::Text(v) => builder.push_bind(v),
                    Value::OptText(v) => builder.push_bind(v),
                    Value::Bool(v) => builder.push_bind(v),
                };
            }
        }
        self
    }

    /// Appends `(v1, v2, …)`: one parenthesised tuple of bound values.
    pub(crate) fn tuple(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Self {
        self.push("(");
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self.push(")")
    }
}

/// A fetched row of either backend.
pub(crate) enum Row {
    Sqlite(sqlx::sqlite::SqliteRow),
    Postgres(sqlx::postgres::PgRow),
}

impl Row {
    /// Column `index` as a blob.
    pub(crate) fn blob(&self, index: usize) -> Result<Vec<u8>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as a nullable blob.
    pub(crate) fn opt_blob(&self, index: usize) -> Result<Option<Vec<u8>>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as a 64-bit integer.
    pub(crate) fn int(&self, index: usize) -> Result<i64, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as a nullable 64-bit integer.
    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as text.
    pub(crate) fn text(&self, index: usize) -> Result<String, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as nullable text.
    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<String>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as a small integer.
    pub(crate) fn small(&self, index: usize) -> Result<i16, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }

    /// Column `index` as a boolean.
    pub(crate) fn boolean(&self, index: usize) -> Result<bool, sqlx::Error> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }
}

/// An open write transaction of either backend. Dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// Runs `query`, returning the rows it yields.
    pub(crate) async fn fetch_all(&mut self, query: &mut Query) -> Result<Vec<Row>, sqlx::Error> {
        match (self, query) {
            (Tx::Sqlite(tx), Query::Sqlite(builder)) => Ok(builder
                .build()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect()),
            (Tx::Postgres(tx), Query::Postgres(builder)) => Ok(builder
                .build()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect()),
            _ => Err(dialect_mismatch()),
        }
    }

    /// Runs `query`, returning the number of rows it changed.
    pub(crate) async fn execute(&mut self, query: &mut Query) -> Result<u64, sqlx::Error> {
        match (self, query) {
            (Tx::Sqlite(tx), Query::Sqlite(builder)) => {
                Ok(builder.build().execute(&mut **tx).await?.rows_affected())
            }
            (Tx::Postgres(tx), Query::Postgres(builder)) => {
                Ok(builder.build().execute(&mut **tx).await?.rows_affected())
            }
            _ => Err(dialect_mismatch()),
        }
    }

    /// Runs a statement without parameters through the simple protocol (savepoints).
    pub(crate) async fn raw(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        use sqlx::Executor as _;
        match self {
            Tx::Sqlite(tx) => (&mut **tx).execute(sql).await.map(|_| ()),
            Tx::Postgres(tx) => (&mut **tx).execute(sql).await.map(|_| ()),
        }
    }

    /// The PostgreSQL transaction, for the statements only that backend has (array binds).
    pub(crate) fn postgres(&mut self) -> Option<&mut sqlx::Transaction<'static, Postgres>> {
        match self {
            Tx::Postgres(tx) => Some(tx),
            Tx::Sqlite(_) => None,
        }
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    /// Rolls back now (a dropped transaction would roll back only when its connection is next
    /// used).
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// The read side of a database: a pool that serves reads outside of write transactions.
#[derive(Clone, Copy)]
pub(crate) enum Reader<'a> {
    Sqlite(&'a sqlx::SqlitePool),
    Postgres(&'a sqlx::PgPool),
}

impl Reader<'_> {
    /// Runs `query`, returning the rows it yields.
    pub(crate) async fn fetch_all(self, query: &mut Query) -> Result<Vec<Row>, sqlx::Error> {
        match (self, query) {
            (Reader::Sqlite(pool), Query::Sqlite(builder)) => {
                Ok(builder.build().fetch_all(pool).await?.into_iter().map(Row::Sqlite).collect())
            }
            (Reader::Postgres(pool), Query::Postgres(builder)) => {
                Ok(builder.build().fetch_all(pool).await?.into_iter().map(Row::Postgres).collect())
            }
            _ => Err(dialect_mismatch()),
        }
    }
}

/// A query built for one backend run on the other: a bug of this crate, reported as a protocol
/// error because sqlx has no better variant for it.
fn dialect_mismatch() -> sqlx::Error {
    sqlx::Error::Protocol("internal: query built for the other database backend".to_owned())
}

/// A reader of one row's columns that names the table and the row in its errors: a column of
/// the wrong type is a query error of `action`, a value the domain refuses is `InvalidRow`.
#[derive(Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub(crate) row: &'a Row,
    pub(crate) table: &'static str,
    pub(crate) action: &'static str,
    /// How the row is named in errors; `None` names it by its first column (text, or bytes in
    /// hex), read only when an error is built, never for rows that read cleanly.
    pub(crate) key: Option<&'a str>,
}

impl<'a> Columns<'a> {
    /// The columns of `row` of `table`, named in errors by its first column.
    pub(crate) fn new(row: &'a Row, table: &'static str, action: &'static str) -> Self {
        Columns { row, table, action, key: None }
    }

    /// The columns of `row` of `table`, named in errors by `key`.
    pub(crate) fn keyed(
        row: &'a Row,
        table: &'static str,
        action: &'static str,
        key: &'a str,
    ) -> Self {
        Columns { row, table, action, key: Some(key) }
    }

    /// A damaged-row error for this row.
    pub(crate) fn invalid(&self, detail: impl Into<String>) -> Error {
        let key = match self.key {
            Some(key) => key.to_owned(),
            None => self
                .row
                .text(0)
                .or_else(|_| self.row.blob(0).map(|b| lucid_core::ids::to_hex(&b)))
                .unwrap_or_default(),
        };
        Error::InvalidRow { table: self.table, key, detail: detail.into() }
    }

    pub(crate) fn text(&self, index: usize) -> Result<String, Error> {
        self.row.text(index).map_err(Error::query(self.action))
    }

    pub(crate) fn opt_text(&self, index: usize) -> Result<Option<String>, Error> {
        self.row.opt_text(index).map_err(Error::query(self.action))
    }

    pub(crate) fn blob(&self, index: usize) -> Result<Vec<u8>, Error> {
        self.row.blob(index).map_err(Error::query(self.action))
    }

    pub(crate) fn opt_blob(&self, index: usize) -> Result<Option<Vec<u8>>, Error> {
        self.row.opt_blob(index).map_err(Error::query(self.action))
    }

    pub(crate) fn int(&self, index: usize) -> Result<i64, Error> {
        self.row.int(index).map_err(Error::query(self.action))
    }

    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>, Error> {
        self.row.opt_int(index).map_err(Error::query(self.action))
    }

    pub(crate) fn unsigned(&self, index: usize, column: &str) -> Result<u64, Error> {
        let value = self.int(index)?;
        u64::try_from(value).map_err(|_| self.invalid(format!("{column} {value} is negative")))
    }

    pub(crate) fn opt_unsigned(&self, index: usize, column: &str) -> Result<Option<u64>, Error> {
        match self.opt_int(index)? {
            None => Ok(None),
            Some(value) => u64::try_from(value)
                .map(Some)
                .map_err(|_| self.invalid(format!("{column} {value} is negative"))),
        }
    }

    pub(crate) fn u32(&self, index: usize, column: &str) -> Result<u32, Error> {
        let value = self.int(index)?;
        u32::try_from(value).map_err(|_| self.invalid(format!("{column} {value} is out of range")))
    }

    pub(crate) fn time(&self, index: usize) -> Result<UnixMillis, Error> {
        self.int(index).map(UnixMillis)
    }

    pub(crate) fn opt_time(&self, index: usize) -> Result<Option<UnixMillis>, Error> {
        Ok(self.opt_int(index)?.map(UnixMillis))
    }

    pub(crate) fn bytes<const N: usize>(
        &self,
        index: usize,
        column: &str,
    ) -> Result<[u8; N], Error> {
        let bytes = self.blob(index)?;
        bytes.as_slice().try_into().map_err(|_| self.invalid(format!("{column} is not {N} bytes")))
    }

    pub(crate) fn node(&self, index: usize, column: &str) -> Result<NodeId, Error> {
        NodeId::from_bytes(self.bytes(index, column)?)
            .map_err(|_| self.invalid(format!("{column} is not a node id")))
    }

    /// A value stored as one of the names `name` gives the values of `all`.
    pub(crate) fn keyword<T: Copy>(
        &self,
        index: usize,
        column: &str,
        all: &[T],
        name: impl Fn(T) -> &'static str,
    ) -> Result<T, Error> {
        let value = self.text(index)?;
        all.iter()
            .copied()
            .find(|v| name(*v) == value)
            .ok_or_else(|| self.invalid(format!("unknown {column} {value:?}")))
    }
}

#[cfg(test)]
mod tests;
