//! Which row changes are kept: `--schemas` and `--tables`.
//!
//! Invariant: a change is kept only when it passes *both* lists (an absent list passes
//! everything). Names compare exactly, as MySQL does on Linux with `lower_case_table_names=0`.
//! A filter is built only through [`Filter::new`], which rejects combinations that can never match,
//! so a running stream never silently indexes nothing.

use std::collections::BTreeSet;

/// A validated schema/table filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    schemas: Option<BTreeSet<String>>,
    tables: Option<BTreeSet<(String, String)>>,
}

/// Why a filter was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    /// A `--tables` entry is not of the form `schema.table`.
    #[error("--tables entry '{entry}' is not of the form schema.table (e.g. mydb.orders)")]
    NotQualified {
        /// The entry as given.
        entry: String,
    },
    /// An empty item in a comma list.
    #[error("{flag} has an empty item in '{list}': expected a comma-separated list of names")]
    EmptyItem {
        /// The flag name.
        flag: &'static str,
        /// The list as given.
        list: String,
    },
    /// A `--tables` entry whose schema is not among `--schemas`: it could never match.
    #[error("--tables entry '{entry}' can never match because its schema is not in --schemas '{schemas}': add '{schema}' to --schemas or drop the entry")]
    Unreachable {
        /// The `schema.table` entry.
        entry: String,
        /// Its schema.
        schema: String,
        /// The `--schemas` list as given.
        schemas: String,
    },
}

impl Filter {
    /// Builds a filter from the raw comma lists of `--schemas` and `--tables`.
    pub fn new(schemas: Option<&str>, tables: Option<&str>) -> Result<Filter, FilterError> {
        let schemas = schemas
            .map(|list| split_list("--schemas", list))
            .transpose()?
            .map(|v| v.into_iter().collect::<BTreeSet<_>>());
        let tables = match tables {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for entry in split_list("--tables", list)? {
                    let (schema, table) = entry
                        .split_once('.')
                        .filter(|(s, t)| !s.is_empty() && !t.is_empty() && !t.contains('.'))
                        .ok_or_else(|| FilterError::NotQualified {
                            entry: entry.clone(),
                        })?;
                    set.insert((schema.to_string(), table.to_string()));
                }
                Some(set)
            }
        };
        if let (Some(s), Some(t)) = (&schemas, &tables) {
            if let Some((schema, table)) = t.iter().find(|(schema, _)| !s.contains(schema)) {
                return Err(FilterError::Unreachable {
                    entry: format!("{schema}.{table}"),
                    schema: schema.clone(),
                    schemas: s.iter().cloned().collect::<Vec<_>>().join(","),
                });
            }
        }
        Ok(Filter { schemas, tables })
    }

    /// Whether a change to `schema.table` is kept.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        let schema_ok = self.schemas.as_ref().is_none_or(|s| s.contains(schema));
        schema_ok
            && self.tables.as_ref().is_none_or(|t| {
                // Avoids allocating a tuple of Strings for every row event.
                t.iter().any(|(s, n)| s == schema && n == table)
            })
    }

    /// Whether some table of `schema` may be kept (for `DROP DATABASE`, which names no table).
    pub fn may_keep_schema(&self, schema: &str) -> bool {
        self.schemas.as_ref().is_none_or(|s| s.contains(schema))
            && self
                .tables
                .as_ref()
                .is_none_or(|t| t.iter().any(|(s, _)| s == schema))
    }

    /// Whether a statement-logged change could touch a kept table: it runs with `default_schema`
    /// selected and has `text`. Conservative: without lists, or when the default schema or any
    /// kept schema's name appears, it may. The text is only searched, never logged.
    pub fn statement_may_touch(&self, default_schema: &str, text: &[u8]) -> bool {
        let kept: Vec<&str> = match (&self.schemas, &self.tables) {
            (Some(s), _) => s.iter().map(String::as_str).collect(),
            (None, Some(t)) => t.iter().map(|(s, _)| s.as_str()).collect(),
            (None, None) => return true,
        };
        let lower = text.to_ascii_lowercase();
        kept.iter().any(|schema| {
            schema.eq_ignore_ascii_case(default_schema)
                || lower
                    .windows(schema.len().max(1))
                    .any(|w| w.eq_ignore_ascii_case(schema.as_bytes()))
        })
    }

    /// A one-line description for logs: `schemas=all tables=shop.orders`.
    pub fn describe(&self) -> String {
        let schemas = match &self.schemas {
            None => "all".to_string(),
            Some(s) => s.iter().cloned().collect::<Vec<_>>().join(","),
        };
        let tables = match &self.tables {
            None => "all".to_string(),
            Some(t) => t
                .iter()
                .map(|(s, n)| format!("{s}.{n}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        format!("schemas={schemas} tables={tables}")
    }
}

fn split_list(flag: &'static str, list: &str) -> Result<Vec<String>, FilterError> {
    list.split(',')
        .map(|item| {
            let item = item.trim();
            if item.is_empty() {
                Err(FilterError::EmptyItem {
                    flag,
                    list: list.to_string(),
                })
            } else {
                Ok(item.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lists_keep_everything() {
        let f = Filter::new(None, None).unwrap();
        assert!(f.matches("a", "b"));
        assert_eq!(f.describe(), "schemas=all tables=all");
    }

    #[test]
    fn schemas_only_keeps_every_table_of_those_schemas() {
        let f = Filter::new(Some("shop, crm"), None).unwrap();
        assert!(f.matches("shop", "orders"));
        assert!(f.matches("crm", "x"));
        assert!(!f.matches("other", "orders"));
        assert!(!f.matches("Shop", "orders"));
    }

    #[test]
    fn tables_only_keeps_exactly_those_tables() {
        let f = Filter::new(None, Some("shop.orders,crm.users")).unwrap();
        assert!(f.matches("shop", "orders"));
        assert!(f.matches("crm", "users"));
        assert!(!f.matches("shop", "users"));
        assert!(!f.matches("crm", "orders"));
    }

    #[test]
    fn both_lists_must_pass() {
        let f = Filter::new(Some("shop,crm"), Some("shop.orders")).unwrap();
        assert!(f.matches("shop", "orders"));
        assert!(!f.matches("crm", "users"));
        assert!(!f.matches("shop", "items"));
    }

    #[test]
    fn statements_elsewhere_cannot_touch_kept_schemas() {
        let f = Filter::new(Some("shop"), None).unwrap();
        assert!(f.statement_may_touch("shop", b"update t set a = 1"));
        assert!(f.statement_may_touch("other", b"UPDATE Shop.t SET a = 1"));
        assert!(!f.statement_may_touch("other", b"update t set a = 1"));
        let all = Filter::new(None, None).unwrap();
        assert!(all.statement_may_touch("other", b"update t set a = 1"));
        let tables = Filter::new(None, Some("crm.users")).unwrap();
        assert!(tables.statement_may_touch("crm", b"delete from users"));
        assert!(!tables.statement_may_touch("app", b"delete from users"));
    }

    #[test]
    fn unqualified_table_is_rejected() {
        for bad in ["orders", ".orders", "shop.", "a.b.c"] {
            assert!(matches!(
                Filter::new(None, Some(bad)),
                Err(FilterError::NotQualified { .. })
            ));
        }
    }

    #[test]
    fn table_outside_schemas_is_rejected_as_unreachable() {
        let err = Filter::new(Some("c"), Some("a.b")).unwrap_err();
        assert!(err.to_string().contains("can never match"), "{err}");
    }

    #[test]
    fn empty_items_are_rejected() {
        assert!(matches!(
            Filter::new(Some("a,,b"), None),
            Err(FilterError::EmptyItem { .. })
        ));
        assert!(matches!(
            Filter::new(None, Some("")),
            Err(FilterError::EmptyItem { .. })
        ));
    }
}
