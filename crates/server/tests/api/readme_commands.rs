//! The commands README.md tells a newcomer to run are there and runnable from a clean checkout:
//! every `./scripts/…` it names exists and is executable (git keeps the mode bit, so a script
//! committed without it fails on every fresh clone with "Permission denied").

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn every_script_the_readme_names_is_executable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut named: Vec<&str> = readme
        .split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')')
        .filter(|word| word.starts_with("./scripts/") && word.ends_with(".sh"))
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(
        named.contains(&"./scripts/test.sh"),
        "README names the test command: {named:?}"
    );
    for script in named {
        let path = root.join(script);
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{script} is named by README but {e}"))
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
}
