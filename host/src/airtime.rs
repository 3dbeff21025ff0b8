//! `strand airtime`: time on air of a LoRa frame, like Semtech's LoRa calculator,
//! and what a duty cycle leaves of an hour. The arithmetic is the core's
//! (`strand_link::lora`), the same a radio node uses.

use std::fmt::Write as _;
use std::time::Duration;

use strand_link::lora::{CodingRate, LowDataRate, Modulation, Preset};

/// Largest LoRa PHY payload (SX12xx FIFO, one length byte).
const MAX_PHY_PAYLOAD: usize = 255;

/// Arguments of `strand airtime`.
#[derive(clap::Args, Debug, Clone)]
pub struct AirtimeArgs {
    /// Spreading factor (5..12).
    #[arg(long, required_unless_present = "preset")]
    sf: Option<u8>,
    /// Bandwidth in kHz (7.8 ... 500).
    #[arg(long, required_unless_present = "preset")]
    bw: Option<f64>,
    /// Coding rate denominator: 5 for 4/5 ... 8 for 4/8.
    #[arg(long, required_unless_present = "preset")]
    cr: Option<u8>,
    /// A Meshtastic modem preset instead of --sf/--bw/--cr (and a 16-symbol preamble).
    #[arg(long, value_enum, conflicts_with_all = ["sf", "bw", "cr"])]
    preset: Option<PresetArg>,
    /// Programmed preamble length in symbols [default: 8, 16 with --preset].
    #[arg(long)]
    preamble: Option<u16>,
    /// PHY payload in bytes (everything handed to the radio, upper-layer headers included).
    #[arg(long)]
    payload: usize,
    /// Implicit header (no LoRa header on air).
    #[arg(long)]
    implicit_header: bool,
    /// No payload CRC.
    #[arg(long)]
    no_crc: bool,
    /// Low-data-rate optimisation [default: auto, on when a symbol lasts more than 16 ms].
    #[arg(long, value_enum, default_value_t = LdroArg::Auto)]
    ldro: LdroArg,
    /// Duty cycle in percent for the per-hour figures (EU868: 1 in most of the band, 10 in 869.40-869.65 MHz).
    #[arg(long, default_value_t = 1.0)]
    duty_cycle: f64,
}

/// Meshtastic presets on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum PresetArg {
    ShortTurbo,
    ShortFast,
    ShortSlow,
    MediumFast,
    MediumSlow,
    LongTurbo,
    LongFast,
    LongModerate,
    LongSlow,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Preset {
        match p {
            PresetArg::ShortTurbo => Preset::ShortTurbo,
            PresetArg::ShortFast => Preset::ShortFast,
            PresetArg::ShortSlow => Preset::ShortSlow,
            PresetArg::MediumFast => Preset::MediumFast,
            PresetArg::MediumSlow => Preset::MediumSlow,
            PresetArg::LongTurbo => Preset::LongTurbo,
            PresetArg::LongFast => Preset::LongFast,
            PresetArg::LongModerate => Preset::LongModerate,
            PresetArg::LongSlow => Preset::LongSlow,
        }
    }
}

/// `--ldro` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum LdroArg {
    Auto,
    On,
    Off,
}

/// The modulation the arguments describe.
fn modulation(args: &AirtimeArgs) -> Result<Modulation, String> {
    let mut m = match args.preset {
        Some(p) => Preset::from(p).modulation(),
        None => {
            let (sf, bw, cr) = (args.sf.unwrap_or(0), args.bw.unwrap_or(0.0), args.cr.unwrap_or(0));
            let cr = CodingRate::from_denominator(cr)
                .ok_or_else(|| format!("--cr {cr}: give the denominator, 5 (4/5) to 8 (4/8)"))?;
            if !(bw > 0.0 && bw <= 2000.0) {
                return Err(format!("--bw {bw}: give the bandwidth in kHz, e.g. 125"));
            }
            Modulation::new(sf, (bw * 1000.0).round() as u32, cr)
                .map_err(|e| format!("invalid modulation: {e:?} (SF 5..12, bandwidth up to 2 MHz)"))?
        }
    };
    if let Some(n) = args.preamble {
        m = m.with_preamble(n);
    }
    let ldro = match args.ldro {
        LdroArg::Auto => LowDataRate::Auto,
        LdroArg::On => LowDataRate::On,
        LdroArg::Off => LowDataRate::Off,
    };
    Ok(m.with_explicit_header(!args.implicit_header).with_crc(!args.no_crc).with_low_data_rate(ldro))
}

/// `x` with three decimals, trailing zeros dropped (144.384 stays, 50.000 becomes 50).
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn ms(d: Duration) -> String {
    trim(d.as_nanos() as f64 / 1e6)
}

fn secs(d: Duration) -> String {
    trim(d.as_secs_f64())
}

/// Frames of `airtime` that fit in one hour at `duty` (a fraction).
fn frames_per_hour(airtime: Duration, duty: f64) -> u64 {
    let allowance = 3600.0 * duty;
    (allowance / airtime.as_secs_f64()).floor() as u64
}

/// The report `strand airtime` prints.
pub fn report(args: &AirtimeArgs) -> Result<String, String> {
    if args.payload > MAX_PHY_PAYLOAD {
        return Err(format!(
            "--payload {}: a LoRa frame carries at most {MAX_PHY_PAYLOAD} bytes",
            args.payload
        ));
    }
    if !(args.duty_cycle > 0.0 && args.duty_cycle <= 100.0) {
        return Err(format!("--duty-cycle {}: give a percentage in (0, 100]", args.duty_cycle));
    }
    let m = modulation(args)?;
    let toa = m.time_on_air(args.payload);
    let tsym = m.symbol_time();
    let payload_symbols = m.payload_symbols(args.payload);
    let duty = args.duty_cycle / 100.0;
    let mut out = String::new();
    let on_off = |b: bool| if b { "on" } else { "off" };
    let _ = writeln!(
        out,
        "SF{}, {} kHz, CR 4/{}, {}-symbol preamble, {} header, CRC {}, low-data-rate optimisation {}",
        m.sf(),
        m.bw_hz() as f64 / 1000.0,
        m.coding_rate().denominator(),
        m.preamble(),
        if m.explicit_header() { "explicit" } else { "implicit" },
        on_off(m.crc()),
        on_off(m.low_data_rate()),
    );
    let _ = writeln!(out, "payload              {} bytes", args.payload);
    let _ = writeln!(out, "time on air          {} ms", ms(toa));
    let _ = writeln!(
        out,
        "  preamble           {} symbols, {} ms",
        m.preamble() as f64 + 4.25,
        ms(m.preamble_time())
    );
    let _ =
        writeln!(out, "  header + payload   {payload_symbols} symbols, {} ms", ms(toa - m.preamble_time()));
    let _ = writeln!(out, "symbol time          {} ms", ms(tsym));
    let _ = writeln!(out, "equivalent bit rate  {:.0} bit/s", m.bit_rate());
    let frames = frames_per_hour(toa, duty);
    let allowance = Duration::from_secs_f64(3600.0 * duty);
    // After a frame, a transmitter at duty cycle d that spreads its allowance evenly waits toa (1/d - 1).
    let off = toa.mul_f64(1.0 / duty - 1.0);
    let _ = writeln!(
        out,
        "at {}% duty cycle     {} s on air per hour: {frames} frames of {} bytes = {} payload bytes per hour \
         (evenly spread: {} s off after each frame)",
        args.duty_cycle,
        secs(allowance),
        args.payload,
        frames * args.payload as u64,
        secs(off),
    );
    let full = frames_per_hour(m.time_on_air(MAX_PHY_PAYLOAD), duty);
    let _ = writeln!(
        out,
        "largest payload per duty-cycle hour: {} bytes, in {full} frames of {MAX_PHY_PAYLOAD} bytes",
        full * MAX_PHY_PAYLOAD as u64
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: AirtimeArgs,
    }

    fn run(line: &str) -> Result<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("airtime").chain(line.split_whitespace()))
            .map_err(|e| e.to_string())?;
        report(&cli.args)
    }

    #[test]
    fn the_semtech_check_value() {
        let out = run("--sf 9 --bw 125 --cr 5 --preamble 8 --payload 12").unwrap();
        assert!(out.contains("time on air          144.384 ms"), "{out}");
        assert!(out.contains("12.25 symbols, 50.176 ms"), "{out}");
        assert!(out.contains("23 symbols, 94.208 ms"), "{out}");
        assert!(out.contains("symbol time          4.096 ms"), "{out}");
        assert!(out.contains("1758 bit/s"), "{out}");
        // 36 s / 0.144384 s = 249.3 frames.
        assert!(out.contains("249 frames of 12 bytes = 2988 payload bytes per hour"), "{out}");
    }

    #[test]
    fn a_preset_sets_the_modulation_and_meshtastics_preamble() {
        let out = run("--preset long-fast --payload 56 --duty-cycle 10").unwrap();
        assert!(out.starts_with("SF11, 250 kHz, CR 4/5, 16-symbol preamble"), "{out}");
        assert!(out.contains("time on air          681.984 ms"), "{out}");
        // 360 s / 0.681984 s = 527.9.
        assert!(out.contains("527 frames of 56 bytes"), "{out}");
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(run("--sf 9 --bw 125 --cr 3 --payload 12").unwrap_err().contains("--cr 3"));
        assert!(run("--sf 13 --bw 125 --cr 5 --payload 12").unwrap_err().contains("SF 5..12"));
        assert!(run("--sf 9 --bw 125 --cr 5 --payload 300").unwrap_err().contains("at most 255"));
        assert!(run("--sf 9 --cr 5 --payload 12").is_err(), "--bw is required without --preset");
    }
}
