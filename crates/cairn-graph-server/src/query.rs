//! The `/v1/graph` query string, checked: `basearch`, `stream`, `rollout_wariness`,
//! `node_uuid`, `oci`. Every way a query can be wrong is a [`QueryError`], answered 400.

use cairn_graph::{wariness_for_request, PayloadKind};

/// Longest query string read; a longer one is refused.
const MAX_QUERY: usize = 4096;

#[derive(Clone, Debug, PartialEq)]
pub struct GraphQuery {
    pub basearch: String,
    pub stream: String,
    pub kind: PayloadKind,
    /// The client's wariness: `rollout_wariness`, or derived from `node_uuid`.
    pub wariness: f64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    TooLong(usize),
    Missing(&'static str),
    Invalid { name: &'static str, value: String },
    WarinessOutOfRange(String),
}

impl QueryError {
    /// The `kind` of the JSON error body.
    pub fn kind(&self) -> &'static str {
        match self {
            QueryError::TooLong(_) => "query_too_long",
            QueryError::Missing(_) => "missing_parameter",
            QueryError::Invalid { .. } => "invalid_parameter",
            QueryError::WarinessOutOfRange(_) => "invalid_rollout_wariness",
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::TooLong(n) => write!(f, "query string of {n} bytes (at most {MAX_QUERY})"),
            QueryError::Missing(name) => write!(f, "missing {name}"),
            QueryError::Invalid { name, value } => write!(f, "invalid {name}: {value:?}"),
            QueryError::WarinessOutOfRange(value) => {
                write!(
                    f,
                    "rollout_wariness must be a number from 0.0 to 1.0, not {value:?}"
                )
            }
        }
    }
}

fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// `^[a-z0-9_]{1,32}$`: architecture names as the release index spells them.
fn valid_basearch(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Stream names: `^[a-z0-9._-]{1,64}$`.
fn valid_stream(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl GraphQuery {
    pub fn parse(query: &str) -> Result<GraphQuery, QueryError> {
        if query.len() > MAX_QUERY {
            return Err(QueryError::TooLong(query.len()));
        }
        let (mut basearch, mut stream, mut wariness, mut uuid, mut oci) =
            (None, None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode(name).as_str() {
                "basearch" => &mut basearch,
                "stream" => &mut stream,
                "rollout_wariness" => &mut wariness,
                "node_uuid" => &mut uuid,
                "oci" => &mut oci,
                _ => continue,
            };
            // The first of a repeated parameter counts.
            slot.get_or_insert_with(|| decode(value));
        }
        let basearch = basearch.ok_or(QueryError::Missing("basearch"))?;
        if !valid_basearch(&basearch) {
            return Err(QueryError::Invalid {
                name: "basearch",
                value: basearch,
            });
        }
        let stream = stream.ok_or(QueryError::Missing("stream"))?;
        if !valid_stream(&stream) {
            return Err(QueryError::Invalid {
                name: "stream",
                value: stream,
            });
        }
        let kind = match oci.as_deref() {
            None | Some("false") | Some("0") | Some("") => PayloadKind::Checksum,
            Some("true") | Some("1") => PayloadKind::Oci,
            Some(other) => {
                return Err(QueryError::Invalid {
                    name: "oci",
                    value: other.to_string(),
                })
            }
        };
        if let Some(value) = &wariness {
            match value.parse::<f64>() {
                Ok(w) if (0.0..=1.0).contains(&w) => {}
                _ => return Err(QueryError::WarinessOutOfRange(value.clone())),
            }
        }
        Ok(GraphQuery {
            wariness: wariness_for_request(wariness.as_deref(), uuid.as_deref()),
            basearch,
            stream,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_query_parses() {
        let q = GraphQuery::parse(
            "basearch=x86_64&stream=stable&rollout_wariness=0.5&oci=true&node_uuid=abc",
        )
        .unwrap();
        assert_eq!(q.basearch, "x86_64");
        assert_eq!(q.stream, "stable");
        assert_eq!(q.kind, PayloadKind::Oci);
        assert_eq!(q.wariness, 0.5);
    }

    #[test]
    fn every_bad_query_says_why() {
        let cases = [
            ("stream=stable", "missing_parameter"),
            ("basearch=x86_64", "missing_parameter"),
            ("basearch=../x&stream=stable", "invalid_parameter"),
            ("basearch=x86_64&stream=Stable!", "invalid_parameter"),
            (
                "basearch=x86_64&stream=stable&oci=maybe",
                "invalid_parameter",
            ),
            (
                "basearch=x86_64&stream=stable&rollout_wariness=1.5",
                "invalid_rollout_wariness",
            ),
            (
                "basearch=x86_64&stream=stable&rollout_wariness=-0.1",
                "invalid_rollout_wariness",
            ),
            (
                "basearch=x86_64&stream=stable&rollout_wariness=NaN",
                "invalid_rollout_wariness",
            ),
            (
                "basearch=x86_64&stream=stable&rollout_wariness=abc",
                "invalid_rollout_wariness",
            ),
        ];
        for (query, kind) in cases {
            assert_eq!(
                GraphQuery::parse(query).unwrap_err().kind(),
                kind,
                "{query}"
            );
        }
        let long = "a".repeat(MAX_QUERY + 1);
        assert_eq!(
            GraphQuery::parse(&long).unwrap_err().kind(),
            "query_too_long"
        );
    }

    #[test]
    fn without_a_wariness_the_node_uuid_decides() {
        let q = GraphQuery::parse("basearch=x86_64&stream=stable&node_uuid=u1").unwrap();
        assert_eq!(q.wariness, cairn_graph::wariness_from_node_uuid("u1"));
    }
}
