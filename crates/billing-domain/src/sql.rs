//! The domain's words and currency codes as PostgreSQL text columns (feature `diesel`): a column holding anything
//! else fails the read loudly instead of becoming a string the code compares by hand.

/// `ToSql`/`FromSql` over `Text` (and so `bpchar`) for a type with a word method and a parser.
macro_rules! text_column {
    ($ty:ty: $word:ident, $parse:ident) => {
        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                std::io::Write::write_all(out, self.$word().as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $ty {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = std::str::from_utf8(value.as_bytes())?;
                // `bpchar` columns pad to their width; a word never ends in a space.
                <$ty>::$parse(text.trim_end()).ok_or_else(|| format!("unknown {} {text:?}", stringify!($ty)).into())
            }
        }
    };
}

pub(crate) use text_column;

text_column!(crate::SubscriptionStatus: as_str, parse);
text_column!(crate::BillingCycle: as_str, parse);
text_column!(crate::Currency: code, from_code);
