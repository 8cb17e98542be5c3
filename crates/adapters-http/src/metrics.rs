//! `GET /metrics` (API.md §10): request counts and latencies in the Prometheus text format,
//! recorded by the gate. Labels are the route pattern (never the raw path, so the number of
//! series stays bounded), the method and the status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};

#[derive(Default, Clone, Copy)]
struct Series {
    count: u64,
    seconds: f64,
}

/// (method, route pattern, status).
type Labels = (String, String, u16);

/// One registry per process, as Prometheus scrapes a process.
static REQUESTS: LazyLock<Mutex<BTreeMap<Labels, Series>>> = LazyLock::new(Mutex::default);

pub fn record(method: &str, route: &str, status: u16, seconds: f64) {
    let mut requests = REQUESTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let series = requests
        .entry((method.to_owned(), route.to_owned(), status))
        .or_default();
    series.count += 1;
    series.seconds += seconds;
}

pub fn render() -> String {
    let requests = REQUESTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# HELP http_requests_total Requests answered, by method, route and status."
    );
    let _ = writeln!(text, "# TYPE http_requests_total counter");
    for ((method, route, status), series) in requests.iter() {
        let _ = writeln!(
            text,
            "http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
            escape(route),
            series.count
        );
    }
    let _ = writeln!(text, "# HELP http_request_duration_seconds_sum Time spent answering, by method, route and status.");
    let _ = writeln!(text, "# TYPE http_request_duration_seconds_sum counter");
    for ((method, route, status), series) in requests.iter() {
        let _ = writeln!(
            text,
            "http_request_duration_seconds_sum{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {:.6}",
            escape(route),
            series.seconds
        );
    }
    text
}

/// Label values escape backslashes, double quotes and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders_by_route_pattern() {
        record("GET", "/v1/metrics-test/{id}", 200, 0.5);
        record("GET", "/v1/metrics-test/{id}", 200, 0.25);
        let text = render();
        assert!(text.contains("http_requests_total{method=\"GET\",route=\"/v1/metrics-test/{id}\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("# TYPE http_requests_total counter"));
        assert_eq!(escape("a\"b"), "a\\\"b");
    }
}
