//! streambench: the stream path of issue 11 measured with real processes — NNCP over `strand pipe`
//! wired with FIFOs and `nncp-daemon -ucspi` (against NNCP on the raw line), interactive echo RTT
//! through `strand forward` under bulk, two `strand pipe tcp:` ends through a relay slower than
//! `--baud`, and a soak of mixed traffic with the 200 ms delivery-gap rule.
//!
//! Every subcommand prints its figures and the ratios to its targets, writes a CSV with `--out-csv`,
//! and exits non-zero if any run is not byte-exact, any process that must exit 0 did not, or a target
//! is missed. Seeds are printed. The figures depend on how busy the machine is: run one benchmark at
//! a time, with nothing else heavy running.
//!
//! `cargo build --release -p strand -p strand-hil && target/release/streambench --help`

#[path = "../streambench/nncp.rs"]
mod nncp;
#[path = "../streambench/rtt.rs"]
mod rtt;
#[path = "../streambench/slow.rs"]
mod slow;
#[path = "../streambench/soak.rs"]
mod soak;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Issue 11's stream benchmarks: NNCP over FIFOs, echo RTT under bulk, a slow path, a soak")]
struct Args {
    #[command(subcommand)]
    bench: Bench,
    /// The strand binary [default: the release build beside this benchmark].
    #[arg(long, global = true)]
    strand: Option<PathBuf>,
    /// Write the runs here as CSV (rewritten after every run).
    #[arg(long, global = true)]
    out_csv: Option<PathBuf>,
    /// Keep every run's directory (logs of every process) and print where it is.
    #[arg(long, global = true)]
    keep: bool,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// NNCP over `strand pipe` as users wire it, N runs per BER, and NNCP over the raw line (socat).
    Nncp(nncp::Args),
    /// Echo round trips through `strand forward`, idle and while another connection pushes bulk.
    Rtt(rtt::Args),
    /// Two `strand pipe tcp:` ends joined by a relay that carries RATE bytes/s each way.
    Slow(slow::Args),
    /// Mixed writes, bursts and idle gaps through `strand pipe` both ways; fails on a 200 ms gap.
    Soak(soak::Args),
}

/// What every benchmark needs: the binary, a scratch directory, and where its CSV goes.
pub struct Ctx {
    /// The strand binary under test (also the line emulator).
    pub strand: PathBuf,
    /// Scratch directory; each run gets a subdirectory.
    pub root: PathBuf,
    /// Keep run directories.
    pub keep: bool,
    /// CSV output.
    pub out_csv: Option<PathBuf>,
}

impl Ctx {
    /// A fresh directory for run `name`.
    pub fn run_dir(&self, name: &str) -> Result<PathBuf, String> {
        let dir = self.root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// Removes `dir` unless `--keep`, in which case it says where it is.
    pub fn done_with(&self, dir: &Path) -> String {
        if self.keep {
            format!(" [{}]", dir.display())
        } else {
            let _ = std::fs::remove_dir_all(dir);
            String::new()
        }
    }

    /// Rewrites the CSV, if one was asked for.
    pub fn csv<S: AsRef<str>>(&self, header: &[&str], rows: &[Vec<S>]) -> Result<(), String> {
        match &self.out_csv {
            Some(path) => {
                strand_hil::report::write_atomically(path, &strand_hil::report::csv_text(header, rows))
            }
            None => Ok(()),
        }
    }
}

/// "PASS"/"MISS" for a target.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let strand = match strand_hil::procs::release_strand(args.strand.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("streambench: {e}");
            return ExitCode::from(2);
        }
    };
    let root = std::env::temp_dir().join(format!("streambench-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("streambench: cannot create {}: {e}", root.display());
        return ExitCode::from(2);
    }
    let ctx = Ctx { strand, root: root.clone(), keep: args.keep, out_csv: args.out_csv.clone() };
    println!("strand: {} ({})", ctx.strand.display(), version(&ctx.strand));
    let result = match &args.bench {
        Bench::Nncp(a) => nncp::run(&ctx, a),
        Bench::Rtt(a) => rtt::run(&ctx, a),
        Bench::Slow(a) => slow::run(&ctx, a),
        Bench::Soak(a) => soak::run(&ctx, a),
    };
    if !args.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    match result {
        Ok(true) => {
            println!("every run byte-exact, every target met");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAILED: a run failed or a target was missed (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("streambench: {e}");
            ExitCode::from(2)
        }
    }
}

/// `strand --version`, for the record.
fn version(strand: &Path) -> String {
    std::process::Command::new(strand)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "version unknown".into())
}
