//! Unit tests of the error helpers.

use super::*;

#[test]
fn redact_hides_only_the_password() {
    assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
}
