//! Checks on file names that come from the peer, and making peer-supplied text safe to print.
//!
//! The receiver joins an offered name onto its target directory, so a name must be a single,
//! ordinary path component: anything else could write outside the directory, onto a device, or
//! put escape sequences on the user's terminal. The sender applies the same check to its own
//! names, so a file the receiver would refuse is reported before anything is sent.

use super::proto::MAX_NAME;

/// Why a name cannot be used; the text completes "refusing file name "…": ".
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name == "." {
        return Err("it names the target directory itself".into());
    }
    let is_separator = |c: char| c == '/' || c == '\\';
    if name.starts_with(is_separator) || name.split(is_separator).any(|part| part == "..") {
        return Err("it leaves the target directory".into());
    }
    if name.contains(is_separator) {
        return Err("it contains a path separator (only plain file names are accepted)".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("it is {} bytes long (the limit is {MAX_NAME})", name.len()));
    }
    // NUL would truncate the path in the kernel; other controls (ESC, newline, DEL, C1) would
    // forge terminal output or break line-oriented tools reading directory listings.
    if name.chars().any(char::is_control) {
        return Err("it contains control characters".into());
    }
    // Bidirectional overrides make "gpj.exe" display as "exe.jpg".
    if name.chars().any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')) {
        return Err("it contains bidirectional text controls".into());
    }
    // The receiver keeps its partial files in this directory; a file of that name would clash.
    if name == super::PARTIAL_DIR {
        return Err(format!("{} is where strand keeps partial files", super::PARTIAL_DIR));
    }
    Ok(())
}

/// Why a spool name cannot be used. A spool name is a relative path of one to three components
/// separated by `/` (NNCP's `RECIPIENT/SENDER/PACKET`), each a valid [`check_name`] and none
/// starting with `.` (hidden names are temporary files, and `.strand-*` hold strand's state).
pub fn check_spool_name(name: &str) -> Result<(), String> {
    if name.starts_with('/') {
        return Err("it leaves the target directory".into());
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 3 {
        return Err("it has more than three path components (RECIPIENT/SENDER/PACKET)".into());
    }
    for part in parts {
        check_name(part)?;
        if part.starts_with('.') {
            return Err("a component starts with \".\" (hidden names are not spooled)".into());
        }
    }
    Ok(())
}

/// `text` as one printable line of bounded length: control characters escaped, long text cut.
/// Used for everything the peer says that ends up in a message for the user.
pub fn printable(text: &str) -> String {
    const LIMIT: usize = 200;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == LIMIT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A name for messages: printable and quoted, so that empty or odd names are visible.
pub fn quoted(name: &str) -> String {
    format!("\"{}\"", printable(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in ["x", "report.pdf", ".hidden", "..dots", "a b", "ünïcødé", "x..y", &"n".repeat(255)] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn hostile_names_fail() {
        let long = "n".repeat(256);
        for name in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "x\0y",
            "\u{1b}[31m",
            "a\nb",
            "\u{9b}",
            "\u{202e}gpj.exe",
            &long,
        ] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        assert!(check_name(super::super::PARTIAL_DIR).is_err());
    }

    #[test]
    fn spool_names() {
        for name in ["P", "S/P", "R/S/P", "LXCIEL2SU4CZ/JBVKBJNBOH5T/QKHDDZ5EKIBK"] {
            assert_eq!(check_spool_name(name), Ok(()), "{name}");
        }
        for name in [
            "",
            "/R/S/P",
            "R//P",
            "R/S/P/X",
            "../S/P",
            "R/../P",
            "R/S/.hidden",
            ".strand-spool/x",
            "R/S/",
            "a\\b/c",
        ] {
            assert!(check_spool_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn printable_escapes_and_bounds() {
        assert_eq!(printable("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
        assert_eq!(printable(&"x".repeat(500)).chars().count(), 201);
        assert_eq!(quoted(""), "\"\"");
    }
}
