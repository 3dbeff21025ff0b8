//! NNCP node configurations for the interop and spool tests.

use std::path::Path;
use std::process::Command;

/// The `self:` keys of a fresh NNCP node.
pub fn nncp_keys() -> Vec<(String, String)> {
    let out = Command::new("nncp-cfgnew").arg("-nocomments").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let block = &text[text.find("self: {").expect("a self section")..];
    ["id", "exchpub", "exchprv", "signpub", "signprv", "noiseprv", "noisepub"]
        .iter()
        .map(|k| {
            let at = block.find(&format!("{k}: ")).expect("key present") + k.len() + 2;
            let v = block[at..].split_whitespace().next().unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// An NNCP config (JSON is valid HJSON) for `me`, knowing `other` as `other_name`.
pub fn nncp_config(
    dir: &Path,
    me: &[(String, String)],
    other_name: &str,
    other: &[(String, String)],
) -> String {
    let obj = |keys: &[(String, String)], public_only: bool| {
        keys.iter()
            .filter(|(k, _)| !public_only || !k.ends_with("prv"))
            .map(|(k, v)| format!("\"{k}\": \"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{\"spool\": \"{d}/spool\", \"log\": \"{d}/log\", \"self\": {{{}}}, \"neigh\": {{\"self\": {{{}}}, \"{other_name}\": {{{}, \"incoming\": \"{d}/in\"}}}}}}",
        obj(me, false),
        obj(me, true),
        obj(other, true),
        d = dir.display()
    )
}
