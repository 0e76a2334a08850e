//! Typed status columns: what diesel reads and writes is one of the enum's words, never a free string.

use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;

/// An enum stored as one of its words in a `text` column (each table's CHECK constraint lists the same words).
macro_rules! text_status {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow, serde::Serialize)]
        #[diesel(sql_type = Text)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.as_str().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
                match value.as_bytes() {
                    $(w if w == $word.as_bytes() => Ok(Self::$variant),)+
                    other => {
                        Err(format!("unknown {} {:?}", stringify!($name), String::from_utf8_lossy(other)).into())
                    }
                }
            }
        }
    };
}

text_status! {
    /// A payment attempt (`transactions.status`).
    TransactionStatus {
        /// Recorded before the gateway was asked; its outcome not known here yet.
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

text_status! {
    /// A refund (`refunds.status`).
    RefundStatus {
        /// Reserved against the payment; the worker has not had the gateway's answer yet.
        Pending => "pending",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

impl TransactionStatus {
    /// As the API says it: `success` (seed 003's word, and the answer to a payment's), `pending`, `failed`.
    pub fn api_word(self) -> &'static str {
        match self {
            Self::Succeeded => "success",
            other => other.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_stored_ones_and_a_payment_succeeds_as_success() {
        let words: Vec<_> = [TransactionStatus::Pending, TransactionStatus::Succeeded, TransactionStatus::Failed]
            .iter()
            .map(|s| (s.as_str(), s.api_word()))
            .collect();
        assert_eq!(words, [("pending", "pending"), ("succeeded", "success"), ("failed", "failed")]);
        assert_eq!(serde_json::to_value(RefundStatus::Succeeded).unwrap_or_default(), "succeeded");
    }
}
