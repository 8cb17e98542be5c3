//! The domain stays pure: no async runtime, no database, no HTTP, no I/O crate anywhere in its
//! normal dependency tree. Asked of cargo itself, so a new dependency that drags one in fails here.

use std::process::Command;

const FORBIDDEN: [&str; 14] = [
    "actix-web",
    "actix-rt",
    "actix-server",
    "tokio",
    "mio",
    "diesel",
    "diesel-async",
    "hyper",
    "reqwest",
    "sqlx",
    "socket2",
    "anyhow",
    "getrandom",
    "rand",
];

#[test]
fn the_domain_pulls_in_no_runtime_database_http_or_io_crate() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree", "-p", "domain", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).expect("utf-8");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"domain"),
        "cargo tree listed the domain: {tree}"
    );
    for forbidden in FORBIDDEN {
        assert!(
            !crates.contains(&forbidden),
            "the domain depends on {forbidden}:\n{tree}"
        );
    }
}
