//! The load client of `scripts/load.sh` and `scripts/faults.sh`: one process that drives the real
//! servers and the one-`SELECT` baseline (`baseline`, main.rs) with the same HTTP client, the same
//! number of connections, and keeps a record of every request (route, child, start, end, status),
//! so per-route percentiles are exact and the kill switch and outage checks can be made from the
//! client's own timestamps.
//!
//! - `load setup`: creates children through the API in parallel, each with its own key
//!   (`credits:read`, `credits:write`) and an allocation of credits; writes `org_id<TAB>secret`
//!   lines to `--out`.
//! - `load run`: the mixed workload over every `--servers` for `--duration` seconds, with the kill
//!   switch under load in its middle (suspend `--kill-switch-children` children through the parent,
//!   then resume them), then the baseline for `--baseline-duration` seconds. Prints per-route
//!   throughput and p50/p99/p99.9, the ratios to the baseline, and the kill switch counts; exits 1
//!   if any of them is not 0 or any request got an unexpected answer.
//! - `load outage`: the same workload while `--db-stop` and, `--down-for` seconds later,
//!   `--db-start` run: only `503 UNAVAILABLE` may answer during the outage, and every request must
//!   be 2xx again within `--recovery-limit` seconds of the database's return.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use reqwest::{Client, Method};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "Load client: setup, mixed run with the kill switch, database outage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Target {
    /// Base URLs of the server processes (comma-separated); requests alternate between them.
    #[arg(long, value_delimiter = ',', required = true)]
    servers: Vec<String>,
    /// The parent's key (an `org:admin` key of the top-level organization).
    #[arg(long, env = "ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Concurrent connections (one request in flight on each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Create the children, their keys and their credits through the API.
    Setup {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1000)]
        children: usize,
        /// Credits allocated to each child.
        #[arg(long, default_value_t = 1000)]
        credits: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The mixed workload with the kill switch in its middle, then the baseline.
    Run {
        #[command(flatten)]
        target: Target,
        /// The file `setup` wrote.
        #[arg(long)]
        children_file: PathBuf,
        /// Base URLs of the baseline processes (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        baseline: Vec<String>,
        #[arg(long, default_value_t = 20)]
        duration: u64,
        #[arg(long, default_value_t = 10)]
        baseline_duration: u64,
        /// How many children the parent suspends (and then resumes) while the load runs.
        #[arg(long, default_value_t = 50)]
        kill_switch_children: usize,
    },
    /// The mixed workload while the database is stopped and started again.
    Outage {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        children_file: PathBuf,
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Seconds of load before the database is stopped.
        #[arg(long, default_value_t = 6)]
        stop_after: u64,
        /// Seconds between the end of the stop command and the start command.
        #[arg(long, default_value_t = 8)]
        down_for: u64,
        /// Shell command that stops the database (returns once it is down).
        #[arg(long)]
        db_stop: String,
        /// Shell command that starts it again (returns once it accepts connections).
        #[arg(long)]
        db_start: String,
        /// Every request must be 2xx again within this many seconds of the start command.
        #[arg(long, default_value_t = 30)]
        recovery_limit: u64,
    },
}

/// What a request was, for the per-route table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    ParentGet,
    ParentList,
    ParentPatch,
    ParentSuspendResume,
    ChildWhoami,
    ChildCredits,
    ChildReserve,
    ChildFinish,
    KillSwitchSuspend,
    KillSwitchResume,
    Baseline,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::ParentGet => "parent GET /v1/organizations/:orgId",
            Route::ParentList => "parent GET /v1/organizations?limit=25",
            Route::ParentPatch => "parent PATCH /v1/organizations/:orgId",
            Route::ParentSuspendResume => "parent POST …/suspend | …/resume",
            Route::ChildWhoami => "child GET /v1/whoami",
            Route::ChildCredits => "child GET /v1/credits",
            Route::ChildReserve => "child POST /v1/credits/reservations",
            Route::ChildFinish => "child POST …/settle | …/release",
            Route::KillSwitchSuspend => "kill switch: parent POST …/suspend",
            Route::KillSwitchResume => "kill switch: parent POST …/resume",
            Route::Baseline => "baseline: GET /baseline/:id (1 SELECT)",
        }
    }
}

/// How a request was answered.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Success,
    KillSwitch,
    Unavailable,
    /// Any other status (the status is kept in the record).
    Other,
    /// No HTTP answer at all (connection refused or reset, timeout).
    NoAnswer,
}

/// One request as the client saw it; instants are microseconds since the run's start.
#[derive(Clone, Copy, Debug)]
struct Record {
    route: Route,
    /// The child whose key sent it (index into the children), if a child's.
    child: Option<u32>,
    start: u64,
    end: u64,
    status: u16,
    outcome: Outcome,
}

struct Child {
    id: String,
    key: String,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("load: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Setup {
            target,
            children,
            credits,
            out,
        } => setup(target, children, credits, out).await,
        Command::Run {
            target,
            children_file,
            baseline,
            duration,
            baseline_duration,
            kill_switch_children,
        } => {
            let children = read_children(&children_file)?;
            run(
                target,
                children,
                baseline,
                Duration::from_secs(duration),
                Duration::from_secs(baseline_duration),
                kill_switch_children,
            )
            .await
        }
        Command::Outage {
            target,
            children_file,
            duration,
            stop_after,
            down_for,
            db_stop,
            db_start,
            recovery_limit,
        } => {
            let children = read_children(&children_file)?;
            let plan = OutagePlan {
                stop_after: Duration::from_secs(stop_after),
                down_for: Duration::from_secs(down_for),
                db_stop,
                db_start,
                recovery_limit: Duration::from_secs(recovery_limit),
            };
            outage(target, children, Duration::from_secs(duration), plan).await
        }
    }
}

fn client(connections: usize) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn read_children(path: &PathBuf) -> anyhow::Result<Vec<Child>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?;
    let children: Vec<Child> = text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, key)| Child {
            id: id.to_owned(),
            key: key.to_owned(),
        })
        .collect();
    if children.len() < 100 {
        bail!(
            "{path:?} has {} children; the workload needs at least 100",
            children.len()
        );
    }
    Ok(children)
}

// ---------------------------------------------------------------------------------------------
// Setup

async fn setup(target: Target, count: usize, credits: u64, out: PathBuf) -> anyhow::Result<()> {
    let started = Instant::now();
    let client = client(target.connections)?;
    let next = Arc::new(AtomicUsize::new(0));
    let target = Arc::new(target);
    let mut tasks = Vec::new();
    for _ in 0..target.connections {
        let (client, next, target) = (client.clone(), next.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(made);
                }
                made.push((i, make_child(&client, &target, i, credits).await?));
            }
        }));
    }
    let mut children = Vec::with_capacity(count);
    for task in tasks {
        children.extend(task.await??);
    }
    children.sort_by_key(|(i, _)| *i);
    let lines: String = children
        .iter()
        .map(|(_, child)| format!("{}\t{}\n", child.id, child.key))
        .collect();
    std::fs::write(&out, lines).with_context(|| format!("writing {out:?}"))?;
    println!(
        "setup: {count} children, each with its own key and {credits} credits, through the API in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn make_child(
    client: &Client,
    target: &Target,
    i: usize,
    credits: u64,
) -> anyhow::Result<Child> {
    let base = &target.servers[i % target.servers.len()];
    let admin = &target.admin_key;
    let created = expect_json(
        client
            .post(format!("{base}/v1/organizations"))
            .bearer_auth(admin)
            .json(&json!({"name": format!("load child {i}"), "metadata": {"load": "1"}})),
        201,
    )
    .await?;
    let id = string_field(&created, "id")?;
    let minted = expect_json(
        client
            .post(format!("{base}/v1/organizations/{id}/api-keys"))
            .bearer_auth(admin)
            .json(&json!({"name": "load", "scopes": ["credits:read", "credits:write"]})),
        201,
    )
    .await?;
    let key = string_field(&minted, "secret")?;
    expect_json(
        client
            .post(format!("{base}/v1/organizations/{id}/credits/allocate"))
            .bearer_auth(admin)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"credits": credits, "description": "load test"})),
        201,
    )
    .await?;
    Ok(Child { id, key })
}

async fn expect_json(request: reqwest::RequestBuilder, status: u16) -> anyhow::Result<Value> {
    let response = request.send().await?;
    let got = response.status().as_u16();
    let body = response.text().await?;
    if got != status {
        bail!("expected {status}, got {got}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

fn string_field(value: &Value, field: &str) -> anyhow::Result<String> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no {field} in {value}"))
}

// ---------------------------------------------------------------------------------------------
// The workload

/// Everything a worker needs, shared.
struct Workload {
    client: Client,
    servers: Vec<String>,
    admin_key: String,
    children: Vec<Child>,
    /// Children only the parent touches, suspending and resuming them at random.
    churn: std::ops::Range<usize>,
    /// Children whose keys send requests (`hot` first: the kill switch's subset).
    hammered: std::ops::Range<usize>,
    hot: std::ops::Range<usize>,
    t0: Instant,
}

impl Workload {
    fn now(&self) -> u64 {
        micros(self.t0.elapsed())
    }

    fn base(&self, n: usize) -> &str {
        &self.servers[n % self.servers.len()]
    }

    /// Sends one request and records it; returns the JSON body of a success when asked for.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        records: &mut Vec<Record>,
        route: Route,
        child: Option<usize>,
        method: Method,
        url: String,
        key: &str,
        body: Option<Value>,
        want_body: bool,
    ) -> Option<Value> {
        let mut request = self.client.request(method, url).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let start = self.now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.ok().map(|bytes| (status, bytes))
            }
            Err(_) => None,
        };
        let end = self.now();
        let (status, outcome, json) = match answer {
            None => (0, Outcome::NoAnswer, None),
            Some((status, bytes)) if (200..300).contains(&status) => {
                let json = if want_body {
                    serde_json::from_slice(&bytes).ok()
                } else {
                    None
                };
                (status, Outcome::Success, json)
            }
            Some((status, bytes)) => {
                let code = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
                let outcome = match (status, code.as_deref()) {
                    (503, Some("KILL_SWITCH")) => Outcome::KillSwitch,
                    (503, Some("UNAVAILABLE")) => Outcome::Unavailable,
                    _ => Outcome::Other,
                };
                (status, outcome, None)
            }
        };
        records.push(Record {
            route,
            child: child.and_then(|c| u32::try_from(c).ok()),
            start,
            end,
            status,
            outcome,
        });
        json
    }
}

/// A small xorshift generator: the workload needs cheap, seeded choices, not cryptography.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    fn pick(&mut self, range: &std::ops::Range<usize>) -> usize {
        range.start + self.below(range.len())
    }
}

/// The mix, in percent: reads by the parent, reads by the children, patches, suspend/resume,
/// reservations (each followed by its settle or release).
const MIX: [(Route, usize); 7] = [
    (Route::ParentGet, 14),
    (Route::ParentList, 8),
    (Route::ParentPatch, 8),
    (Route::ParentSuspendResume, 5),
    (Route::ChildWhoami, 25),
    (Route::ChildCredits, 25),
    (Route::ChildReserve, 15),
];

async fn worker(load: Arc<Workload>, seed: u64, until: Instant) -> Vec<Record> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut records = Vec::with_capacity(16 * 1024);
    let mut n = seed as usize;
    let total: usize = MIX.iter().map(|(_, w)| w).sum();
    while Instant::now() < until {
        n += 1;
        let mut roll = rng.below(total);
        let mut route = Route::ChildWhoami;
        for (r, weight) in MIX {
            if roll < weight {
                route = r;
                break;
            }
            roll -= weight;
        }
        let base = load.base(n).to_owned();
        let admin = load.admin_key.as_str();
        // Child requests favour the kill switch's subset, so its windows hold many requests.
        let child = if !load.hot.is_empty() && rng.below(4) == 0 {
            rng.pick(&load.hot)
        } else {
            rng.pick(&load.hammered)
        };
        let any = rng.below(load.children.len());
        let r = &mut records;
        match route {
            Route::ParentGet => {
                let url = format!("{base}/v1/organizations/{}", load.children[any].id);
                load.send(r, route, None, Method::GET, url, admin, None, false)
                    .await;
            }
            Route::ParentList => {
                let url = format!("{base}/v1/organizations?limit=25");
                load.send(r, route, None, Method::GET, url, admin, None, false)
                    .await;
            }
            Route::ParentPatch => {
                let url = format!("{base}/v1/organizations/{}", load.children[any].id);
                let body = json!({"metadata": {"tick": n.to_string()}});
                load.send(r, route, None, Method::PATCH, url, admin, Some(body), false)
                    .await;
            }
            Route::ParentSuspendResume => {
                let target = &load.children[rng.pick(&load.churn)].id;
                let action = if rng.below(2) == 0 {
                    "suspend"
                } else {
                    "resume"
                };
                let url = format!("{base}/v1/organizations/{target}/{action}");
                load.send(r, route, None, Method::POST, url, admin, None, false)
                    .await;
            }
            Route::ChildWhoami | Route::ChildCredits => {
                let path = if route == Route::ChildWhoami {
                    "whoami"
                } else {
                    "credits"
                };
                let url = format!("{base}/v1/{path}");
                let key = &load.children[child].key;
                load.send(r, route, Some(child), Method::GET, url, key, None, false)
                    .await;
            }
            Route::ChildReserve => {
                let key = &load.children[child].key;
                let url = format!("{base}/v1/credits/reservations");
                let body = json!({"credits": 2, "description": "load"});
                let held = load
                    .send(
                        r,
                        route,
                        Some(child),
                        Method::POST,
                        url,
                        key,
                        Some(body),
                        true,
                    )
                    .await;
                let Some(id) = held.as_ref().and_then(|h| h["id"].as_str()) else {
                    continue;
                };
                // Half are settled for 1 credit (a usage event), half released.
                let other = load.base(n + 1);
                let (url, body) = if rng.below(2) == 0 {
                    (
                        format!("{other}/v1/credits/reservations/{id}/settle"),
                        Some(json!({"credits": 1})),
                    )
                } else {
                    (
                        format!("{other}/v1/credits/reservations/{id}/release"),
                        None,
                    )
                };
                load.send(
                    r,
                    Route::ChildFinish,
                    Some(child),
                    Method::POST,
                    url,
                    key,
                    body,
                    false,
                )
                .await;
            }
            _ => {}
        }
    }
    records
}

/// Runs `connections` workers until `until`; returns every record.
async fn hammer(
    load: &Arc<Workload>,
    connections: usize,
    until: Instant,
) -> anyhow::Result<Vec<Record>> {
    let workers: Vec<_> = (0..connections)
        .map(|w| tokio::spawn(worker(load.clone(), w as u64 + 1, until)))
        .collect();
    let mut records = Vec::new();
    for w in workers {
        records.extend(w.await?);
    }
    Ok(records)
}

fn workload(
    target: &Target,
    children: Vec<Child>,
    kill_switch: usize,
) -> anyhow::Result<Arc<Workload>> {
    let n = children.len();
    let churn = n - n / 20..n;
    let hot = 0..kill_switch.min(n / 4);
    Ok(Arc::new(Workload {
        client: client(target.connections + 64)?,
        servers: target.servers.clone(),
        admin_key: target.admin_key.clone(),
        children,
        hammered: 0..churn.start,
        churn,
        hot,
        t0: Instant::now(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Run: mixed workload, kill switch, baseline

/// The kill switch's timeline for one child, in microseconds since the start.
#[derive(Default, Clone, Copy)]
struct Switch {
    suspend_sent: u64,
    suspend_answered: u64,
    resume_sent: u64,
    resume_answered: u64,
}

async fn run(
    target: Target,
    children: Vec<Child>,
    baseline: Vec<String>,
    duration: Duration,
    baseline_duration: Duration,
    kill_switch: usize,
) -> anyhow::Result<()> {
    let load = workload(&target, children, kill_switch)?;
    println!(
        "mixed workload: {} children ({} hammering with their own keys, {} suspended/resumed at random by the parent), {} server processes, {} connections, {} s",
        load.children.len(),
        load.hammered.len(),
        load.churn.len(),
        load.servers.len(),
        target.connections,
        duration.as_secs()
    );
    let until = Instant::now() + duration;
    let switch = {
        let load = load.clone();
        tokio::spawn(async move { kill_switch_phase(load, duration).await })
    };
    let mut records = hammer(&load, target.connections, until).await?;
    let (switches, switch_records) = switch.await??;
    records.extend(switch_records);

    // The baseline, with the same client and connections.
    let baseline_records = {
        let client = load.client.clone();
        let ids: Arc<Vec<String>> = Arc::new(load.children.iter().map(|c| c.id.clone()).collect());
        let t0 = Instant::now();
        let until = t0 + baseline_duration;
        let baseline = Arc::new(baseline);
        let workers: Vec<_> = (0..target.connections)
            .map(|w| {
                let (client, ids, baseline) = (client.clone(), ids.clone(), baseline.clone());
                tokio::spawn(async move {
                    let mut rng = Rng((w as u64 + 7).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
                    let mut records = Vec::new();
                    let mut n = w;
                    while Instant::now() < until {
                        n += 1;
                        let url = format!(
                            "{}/baseline/{}",
                            baseline[n % baseline.len()],
                            ids[rng.below(ids.len())]
                        );
                        let start = micros(t0.elapsed());
                        let status = match client.get(url).send().await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                r.bytes().await.map(|_| status).unwrap_or(0)
                            }
                            Err(_) => 0,
                        };
                        records.push(Record {
                            route: Route::Baseline,
                            child: None,
                            start,
                            end: micros(t0.elapsed()),
                            status,
                            outcome: if status == 200 {
                                Outcome::Success
                            } else {
                                Outcome::Other
                            },
                        });
                    }
                    records
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await?);
        }
        all
    };

    // Which kill switch answers were expected: a hot child's request that ended after its
    // suspend was sent and started before its resume answered.
    let expected_kill = |r: &Record| {
        r.child
            .and_then(|c| switches.get(c as usize))
            .is_some_and(|s| r.end > s.suspend_sent && r.start < s.resume_answered)
    };
    let mut unexpected = 0;
    for r in &records {
        let fine = match r.outcome {
            Outcome::Success => true,
            Outcome::KillSwitch => expected_kill(r),
            _ => false,
        };
        if !fine {
            unexpected += 1;
            if unexpected <= 10 {
                eprintln!("unexpected answer: {r:?}");
            }
        }
    }

    let base = Stats::of(&baseline_records, baseline_duration);
    println!();
    print_table(&records, duration, Some(&base));
    println!(
        "{:<40} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>7}   (1.00x)",
        Route::Baseline.name(),
        base.count,
        base.rps,
        base.p50,
        base.p99,
        base.p999,
        base.failed
    );
    let mixed = Stats::of(&records, duration);
    println!(
        "\nthroughput: mixed workload {:.0} req/s vs baseline {:.0} req/s = {:.2}x of the baseline's; latency ratio p50 {:.2}x, p99 {:.2}x, p99.9 {:.2}x",
        mixed.rps,
        base.rps,
        mixed.rps / base.rps,
        mixed.p50 / base.p50,
        mixed.p99 / base.p99,
        mixed.p999 / base.p999
    );

    // The kill switch counts.
    let mut during = 0;
    let mut admitted = 0;
    let mut after = 0;
    let mut refused = 0;
    for r in records
        .iter()
        .filter(|r| r.route != Route::KillSwitchSuspend && r.route != Route::KillSwitchResume)
    {
        let Some(s) = r.child.and_then(|c| switches.get(c as usize)) else {
            continue;
        };
        if r.start > s.suspend_answered && r.end < s.resume_sent {
            during += 1;
            if r.outcome == Outcome::Success {
                admitted += 1;
            }
        }
        if r.start > s.resume_answered {
            after += 1;
            if r.outcome == Outcome::KillSwitch {
                refused += 1;
            }
        }
    }
    let window: u64 = switches
        .iter()
        .map(|s| s.resume_sent.saturating_sub(s.suspend_answered))
        .min()
        .unwrap_or(0);
    println!(
        "\nkill switch under load: the parent suspended {} children (their keys hammering both processes), then resumed them {:.1} s later",
        switches.len(),
        window as f64 / 1e6
    );
    println!(
        "  {during} child-key requests started after their organization's suspend answered (and ended before its resume was sent): {admitted} answered 2xx (must be 0)"
    );
    println!(
        "  {after} child-key requests started after the resume answered: {refused} answered 503 KILL_SWITCH (must be 0)"
    );
    println!("  unexpected answers in the whole run (anything but 2xx and the kill switch's expected 503s): {unexpected} (must be 0)");

    if admitted != 0 || refused != 0 || unexpected != 0 {
        bail!("the load run failed: {admitted} admitted after suspend, {refused} refused after resume, {unexpected} unexpected answers");
    }
    if during < 100 || after < 100 {
        bail!(
            "the kill switch windows held too few requests to prove anything ({during}, {after})"
        );
    }
    if base.failed != 0 {
        bail!("{} baseline requests failed", base.failed);
    }
    Ok(())
}

/// Suspends the hot children a third of the way in, resumes them two thirds in.
async fn kill_switch_phase(
    load: Arc<Workload>,
    duration: Duration,
) -> anyhow::Result<(Vec<Switch>, Vec<Record>)> {
    let mut switches = vec![Switch::default(); load.hot.len()];
    let mut records = Vec::new();
    for (phase, action) in [(0.35, "suspend"), (0.65, "resume")] {
        let at = load.t0 + duration.mul_f64(phase);
        tokio::time::sleep_until(at.into()).await;
        let tasks: Vec<_> = load
            .hot
            .clone()
            .map(|c| {
                let load = load.clone();
                tokio::spawn(async move {
                    let mut records = Vec::new();
                    let url = format!(
                        "{}/v1/organizations/{}/{action}",
                        load.base(c + 1),
                        load.children[c].id
                    );
                    let route = if action == "suspend" {
                        Route::KillSwitchSuspend
                    } else {
                        Route::KillSwitchResume
                    };
                    load.send(
                        &mut records,
                        route,
                        None,
                        Method::POST,
                        url,
                        &load.admin_key,
                        None,
                        false,
                    )
                    .await;
                    (c, records)
                })
            })
            .collect();
        for task in tasks {
            let (c, rs) = task.await?;
            for r in rs {
                if r.outcome != Outcome::Success {
                    bail!("{action} of child {c} answered {}", r.status);
                }
                let s = &mut switches[c];
                if action == "suspend" {
                    (s.suspend_sent, s.suspend_answered) = (r.start, r.end);
                } else {
                    (s.resume_sent, s.resume_answered) = (r.start, r.end);
                }
                records.push(r);
            }
        }
    }
    Ok((switches, records))
}

// ---------------------------------------------------------------------------------------------
// Outage: the database stops and starts under load

struct OutagePlan {
    stop_after: Duration,
    down_for: Duration,
    db_stop: String,
    db_start: String,
    recovery_limit: Duration,
}

async fn shell(command: &str) -> anyhow::Result<()> {
    let command = command.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await??;
    if !status.success() {
        bail!("command failed: {status}");
    }
    Ok(())
}

async fn outage(
    target: Target,
    children: Vec<Child>,
    duration: Duration,
    plan: OutagePlan,
) -> anyhow::Result<()> {
    let load = workload(&target, children, 0)?;
    if plan.stop_after + plan.down_for + Duration::from_secs(5) > duration {
        bail!("--duration leaves no time to see the service come back");
    }
    println!(
        "outage under load: {} children, {} server processes, {} connections, {} s; the database stops after {} s and is started {} s after it is down",
        load.children.len(),
        load.servers.len(),
        target.connections,
        duration.as_secs(),
        plan.stop_after.as_secs(),
        plan.down_for.as_secs()
    );
    let until = Instant::now() + duration;
    let worker_load = load.clone();
    let connections = target.connections;
    let workers = tokio::spawn(async move { hammer(&worker_load, connections, until).await });

    tokio::time::sleep_until((load.t0 + plan.stop_after).into()).await;
    let stop_sent = load.now();
    shell(&plan.db_stop)
        .await
        .context("stopping the database")?;
    let stop_done = load.now();
    tokio::time::sleep(plan.down_for).await;
    let start_sent = load.now();
    shell(&plan.db_start)
        .await
        .context("starting the database")?;
    let start_done = load.now();
    let records = workers.await??;

    let secs = |us: u64| us as f64 / 1e6;
    println!(
        "database: stop sent at {:.2} s, down at {:.2} s; start sent at {:.2} s, accepting at {:.2} s",
        secs(stop_sent),
        secs(stop_done),
        secs(start_sent),
        secs(start_done)
    );
    // During the outage: started once it was down, answered before it was started again.
    let outage: Vec<&Record> = records
        .iter()
        .filter(|r| r.start >= stop_done && r.end <= start_sent)
        .collect();
    let outage_unavailable = outage
        .iter()
        .filter(|r| r.outcome == Outcome::Unavailable)
        .count();
    let outage_success = outage
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count();
    let outage_slowest = outage.iter().map(|r| r.end - r.start).max().unwrap_or(0);
    // In the whole run, nothing but 2xx and 503 UNAVAILABLE.
    let mut other: BTreeMap<(Route, u16), usize> = BTreeMap::new();
    for r in &records {
        if !matches!(r.outcome, Outcome::Success | Outcome::Unavailable) {
            *other.entry((r.route, r.status)).or_default() += 1;
        }
    }
    let other_total: usize = other.values().sum();
    let unavailable_total = records
        .iter()
        .filter(|r| r.outcome == Outcome::Unavailable)
        .count();
    // Recovery: the last failure answered after the database was back.
    let last_failure = records
        .iter()
        .filter(|r| r.outcome != Outcome::Success)
        .map(|r| r.end)
        .max()
        .unwrap_or(0);
    let recovery = last_failure.saturating_sub(start_done);
    let first_success = records
        .iter()
        .filter(|r| r.start >= start_done && r.outcome == Outcome::Success)
        .map(|r| r.end)
        .min()
        .unwrap_or(u64::MAX);
    let after_recovery = records.iter().filter(|r| r.start > last_failure).count();
    let full_service = micros(duration).saturating_sub(last_failure);

    println!();
    print_table(&records, duration, None);
    println!("\nduring the outage ({} requests started after the database was down and answered before it was started): {} × 503 UNAVAILABLE, {} × 2xx, {} × anything else; slowest answer {:.2} s",
        outage.len(), outage_unavailable, outage_success, outage.len() - outage_unavailable - outage_success, secs(outage_slowest));
    println!(
        "whole run: {} requests, {} × 503 UNAVAILABLE, other non-2xx answers (or no answer at all): {} (must be 0)",
        records.len(),
        unavailable_total,
        other_total
    );
    for ((route, status), count) in &other {
        println!("  {count} × {status} on {}", route.name());
    }
    println!(
        "recovery: the start command was sent at {:.2} s and the database accepted connections at {:.2} s; first 2xx after it at {:.2} s; last failure answered at {:.2} s: every request 2xx again {:.2} s after the database was back (limit {} s); then {} requests in {:.1} s, all 2xx",
        secs(start_sent),
        secs(start_done),
        secs(first_success),
        secs(last_failure),
        secs(recovery),
        plan.recovery_limit.as_secs(),
        after_recovery,
        secs(full_service)
    );
    if outage.is_empty() || outage_unavailable == 0 {
        bail!("no request saw the outage: the stop command did not take the database away");
    }
    if other_total != 0 {
        bail!("{other_total} answers other than 2xx or 503 UNAVAILABLE");
    }
    if recovery > micros(plan.recovery_limit) || after_recovery < 100 {
        bail!(
            "the service did not come back within {} s",
            plan.recovery_limit.as_secs()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Figures

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

struct Stats {
    count: usize,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    failed: usize,
}

impl Stats {
    fn of<'a>(records: impl IntoIterator<Item = &'a Record>, over: Duration) -> Stats {
        let mut latencies = Vec::new();
        let mut failed = 0;
        for r in records {
            latencies.push(r.end - r.start);
            if r.outcome != Outcome::Success {
                failed += 1;
            }
        }
        latencies.sort_unstable();
        // Nearest rank: the smallest latency at or above which q of the requests lie.
        let at = |q: f64| {
            if latencies.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1] as f64 / 1000.0
        };
        Stats {
            count: latencies.len(),
            rps: latencies.len() as f64 / over.as_secs_f64(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            failed,
        }
    }
}

fn print_table(records: &[Record], over: Duration, baseline: Option<&Stats>) {
    let mut routes: BTreeMap<Route, Vec<&Record>> = BTreeMap::new();
    for r in records {
        routes.entry(r.route).or_default().push(r);
    }
    println!(
        "{:<40} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}   {}",
        "route",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "non-2xx",
        if baseline.is_some() {
            "latency ÷ baseline (p50, p99, p99.9)"
        } else {
            ""
        }
    );
    for (route, rs) in &routes {
        let s = Stats::of(rs.iter().copied(), over);
        let ratio = baseline
            .map(|b| {
                format!(
                    "{:.2}x, {:.2}x, {:.2}x",
                    s.p50 / b.p50,
                    s.p99 / b.p99,
                    s.p999 / b.p999
                )
            })
            .unwrap_or_default();
        println!(
            "{:<40} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>7}   {}",
            route.name(),
            s.count,
            s.rps,
            s.p50,
            s.p99,
            s.p999,
            s.failed,
            ratio
        );
    }
    let s = Stats::of(records, over);
    println!(
        "{:<40} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>7}",
        "all routes (mixed)", s.count, s.rps, s.p50, s.p99, s.p999, s.failed
    );
}
