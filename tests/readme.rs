//! The README names the test that attacks each promise: those tests must exist.
use std::collections::BTreeSet;

#[test]
fn every_test_the_readme_names_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut named = BTreeSet::new();
    for part in readme.split('`') {
        let Some((module, test)) = part.split_once("::") else {
            continue;
        };
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if plain(module) && plain(test) && std::path::Path::new(&format!("{root}/tests/{module}.rs")).exists() {
            named.insert((module.to_owned(), test.to_owned()));
        }
    }
    assert!(named.len() >= 30, "the README names its tests: found {}", named.len());
    for (module, test) in named {
        let source = std::fs::read_to_string(format!("{root}/tests/{module}.rs")).unwrap();
        assert!(
            source.contains(&format!("fn {test}(")),
            "README names tests/{module}.rs::{test}, which does not exist"
        );
    }
}
