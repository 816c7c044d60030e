//! Prometheus metrics of the graph service, in the text exposition format.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
struct Counts {
    /// Responses by status code.
    responses: BTreeMap<u16, u64>,
    /// Graph answers by stream.
    graph_requests: BTreeMap<String, u64>,
    /// Wariness histogram buckets 0.0, 0.1, … 1.0 (cumulative when rendered).
    wariness: [u64; 11],
    wariness_sum: f64,
    wariness_count: u64,
    /// Per stream: successful and failed refreshes, releases, and whether the last failed.
    refresh_ok: BTreeMap<String, u64>,
    refresh_failed: BTreeMap<String, u64>,
    releases: BTreeMap<String, usize>,
    source_error: BTreeMap<String, bool>,
}

#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn response(&self, status: u16) {
        self.with(|c| *c.responses.entry(status).or_default() += 1);
    }

    pub fn graph_request(&self, stream: &str, wariness: f64) {
        self.with(|c| {
            *c.graph_requests.entry(stream.to_string()).or_default() += 1;
            let bucket = ((wariness * 10.0).ceil().clamp(0.0, 10.0)) as usize;
            c.wariness[bucket] += 1;
            c.wariness_sum += wariness;
            c.wariness_count += 1;
        });
    }

    pub fn refreshed(&self, stream: &str, ok: bool, releases: usize) {
        self.with(|c| {
            let map = if ok {
                &mut c.refresh_ok
            } else {
                &mut c.refresh_failed
            };
            *map.entry(stream.to_string()).or_default() += 1;
            if ok {
                c.releases.insert(stream.to_string(), releases);
            }
            c.source_error.insert(stream.to_string(), !ok);
        });
    }

    pub fn render(&self) -> String {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<String>| {
            cairn_http::metric_family(&mut out, name, kind, help, samples)
        };
        family(
            "cairn_graph_responses_total",
            "counter",
            "HTTP responses by status code.",
            c.responses
                .iter()
                .map(|(code, n)| format!("cairn_graph_responses_total{{code=\"{code}\"}} {n}"))
                .collect(),
        );
        family(
            "cairn_graph_v1_graph_requests_total",
            "counter",
            "Graphs answered, by stream.",
            c.graph_requests
                .iter()
                .map(|(s, n)| format!("cairn_graph_v1_graph_requests_total{{stream=\"{s}\"}} {n}"))
                .collect(),
        );
        let mut cumulative = 0;
        let mut buckets: Vec<String> = c
            .wariness
            .iter()
            .enumerate()
            .map(|(i, n)| {
                cumulative += n;
                format!(
                    "cairn_graph_rollout_wariness_bucket{{le=\"{:.1}\"}} {cumulative}",
                    i as f64 / 10.0
                )
            })
            .collect();
        buckets.push(format!(
            "cairn_graph_rollout_wariness_bucket{{le=\"+Inf\"}} {}",
            c.wariness_count
        ));
        buckets.push(format!(
            "cairn_graph_rollout_wariness_sum {}",
            c.wariness_sum
        ));
        buckets.push(format!(
            "cairn_graph_rollout_wariness_count {}",
            c.wariness_count
        ));
        family(
            "cairn_graph_rollout_wariness",
            "histogram",
            "Rollout wariness of graph requests.",
            buckets,
        );
        for (name, help, map) in [
            (
                "cairn_graph_refresh_total",
                "Successful source refreshes, by stream.",
                &c.refresh_ok,
            ),
            (
                "cairn_graph_refresh_failures_total",
                "Failed source refreshes, by stream.",
                &c.refresh_failed,
            ),
        ] {
            family(
                name,
                "counter",
                help,
                map.iter()
                    .map(|(s, n)| format!("{name}{{stream=\"{s}\"}} {n}"))
                    .collect(),
            );
        }
        family(
            "cairn_graph_source_error",
            "gauge",
            "1 when the last refresh of a stream failed (the last good graph is served).",
            c.source_error
                .iter()
                .map(|(s, e)| {
                    format!(
                        "cairn_graph_source_error{{stream=\"{s}\"}} {}",
                        u8::from(*e)
                    )
                })
                .collect(),
        );
        family(
            "cairn_graph_releases",
            "gauge",
            "Releases in the last good release index, by stream.",
            c.releases
                .iter()
                .map(|(s, n)| format!("cairn_graph_releases{{stream=\"{s}\"}} {n}"))
                .collect(),
        );
        out
    }
}
