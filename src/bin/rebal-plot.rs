//! rebal-plot: the pictures of the VM benchmark harness (scripts/bench-vm),
//! drawn as SVG in Rust so that a harness run needs nothing but this repo.
//!
//! - `load`: each domain's load over time, from a `--stats-json` file: the
//!   quickest way to see whether the balancer evened the domains out, and
//!   how fast.
//! - `latency`: the distribution of wakeup latency per scheduler, from
//!   cyclictest histograms (`-h`), drawn as the share of wakeups slower than
//!   x on log axes, so the tail, which is what a gamer feels, gets the room
//!   rather than the median.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use plotters::prelude::*;

#[derive(Debug, Parser)]
#[command(version, about = "Plots for scx_rebal's benchmark harness (SVG)")]
struct Opts {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Per-domain load over time from a --stats-json file.
    Load {
        /// The --stats-json file (one JSON object per line).
        stats: PathBuf,
        /// Where to write the SVG.
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, default_value = "scx_rebal: load per domain")]
        title: String,
    },
    /// Wakeup latency distributions from cyclictest histograms, one curve
    /// per scheduler: NAME=FILE[,FILE...] (the files of one scheduler are
    /// added up, e.g. its rounds).
    Latency {
        #[arg(required = true, value_name = "NAME=FILES")]
        series: Vec<String>,
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, default_value = "wakeup latency under load (cyclictest)")]
        title: String,
    },
}

/// (t, load of each domain) per line of a --stats-json file.
fn read_loads(text: &str) -> Result<Vec<(f64, Vec<f64>)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("line {} is not JSON", i + 1))?;
        let t = v["t"]
            .as_f64()
            .with_context(|| format!("line {} has no number `t`", i + 1))?;
        let loads = v["domains"]
            .as_array()
            .with_context(|| format!("line {} has no `domains` array", i + 1))?
            .iter()
            .map(|d| d["load"].as_f64().unwrap_or(0.0))
            .collect();
        out.push((t, loads));
    }
    Ok(out)
}

/// A cyclictest histogram: latency (us) -> count. Lines are
/// "LATENCY COUNT" (one thread) or "LATENCY COUNT COUNT..." (several,
/// added up); '#' starts a comment.
fn read_hist(text: &str) -> BTreeMap<u64, u64> {
    let mut h = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split_whitespace().map(str::parse::<u64>);
        if let Some(Ok(lat)) = f.next() {
            let n: u64 = f.map_while(|x| x.ok()).sum();
            if n > 0 {
                *h.entry(lat).or_default() += n;
            }
        }
    }
    h
}

/// Points (latency, share of wakeups at or above it), for a log-log
/// "survival" curve, and the p99.
fn survival(h: &BTreeMap<u64, u64>) -> (Vec<(f64, f64)>, u64) {
    let total: u64 = h.values().sum();
    let mut above = total;
    let mut pts = Vec::new();
    let mut p99 = 0;
    let mut seen = 0;
    for (&lat, &n) in h {
        pts.push(((lat.max(1)) as f64, above as f64 / total.max(1) as f64));
        above -= n;
        seen += n;
        if p99 == 0 && seen * 100 >= total * 99 {
            p99 = lat;
        }
    }
    (pts, p99)
}

fn plot_load(stats: &Path, out: &Path, title: &str) -> Result<()> {
    let text = fs::read_to_string(stats).with_context(|| format!("reading {}", stats.display()))?;
    let rows = read_loads(&text).with_context(|| format!("parsing {}", stats.display()))?;
    let Some(nr_doms) = rows.iter().map(|(_, l)| l.len()).max().filter(|&n| n > 0) else {
        bail!("{} holds no domain loads", stats.display());
    };
    let t_max = rows.iter().map(|r| r.0).fold(1.0, f64::max);
    let l_max = rows
        .iter()
        .flat_map(|r| r.1.iter().copied())
        .fold(1.0, f64::max);
    let root = SVGBackend::new(out, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..l_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since attach")
        .y_desc("load (nice-0 tasks)")
        .draw()?;
    for d in 0..nr_doms {
        let color = Palette99::pick(d).to_rgba();
        chart
            .draw_series(LineSeries::new(
                rows.iter().filter_map(|(t, l)| l.get(d).map(|&v| (*t, v))),
                color.stroke_width(2),
            ))?
            .label(format!("domain {d}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn plot_latency(series: &[String], out: &Path, title: &str) -> Result<()> {
    let mut curves = Vec::new();
    for s in series {
        let Some((name, files)) = s.split_once('=') else {
            bail!("{s:?} is not NAME=FILE[,FILE...]");
        };
        let mut h = BTreeMap::new();
        for f in files.split(',').filter(|f| !f.is_empty()) {
            let text = fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
            for (lat, n) in read_hist(&text) {
                *h.entry(lat).or_default() += n;
            }
        }
        if h.is_empty() {
            bail!("no histogram data for {name} in {files}");
        }
        let total: u64 = h.values().sum();
        let (pts, p99) = survival(&h);
        curves.push((format!("{name} (p99 {p99} us, {total} wakeups)"), pts));
    }
    let x_max = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(10.0, f64::max);
    let y_min = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .filter(|&y| y > 0.0)
        .fold(1.0, f64::min)
        .max(1e-6);
    let root = SVGBackend::new(out, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.0..x_max * 1.2).log_scale(), (y_min..1.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("wakeup latency (us)")
        .y_desc("share of wakeups at least this late")
        .draw()?;
    for (i, (label, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let r = match &opts.what {
        What::Load { stats, out, title } => plot_load(stats, out, title),
        What::Latency { series, out, title } => plot_latency(series, out, title),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rebal-plot: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_per_line() {
        let rows = read_loads(
            "{\"t\":1.0,\"domains\":[{\"load\":2.0},{\"load\":0.5}]}\n\n\
             {\"t\":2.0,\"domains\":[{\"load\":1.0},{\"load\":1.5}]}\n",
        )
        .unwrap();
        assert_eq!(rows, vec![(1.0, vec![2.0, 0.5]), (2.0, vec![1.0, 1.5])]);
        assert!(read_loads("{\"domains\":[]}").is_err());
        assert!(read_loads("not json").is_err());
    }

    #[test]
    fn histogram_and_tail() {
        let h = read_hist("# comment\n0 0\n1 90\n5 9 0\n40 1\n# Max Latencies: 40\n");
        assert_eq!(h.values().sum::<u64>(), 100);
        let (pts, p99) = survival(&h);
        assert_eq!(p99, 5);
        assert_eq!(pts[0], (1.0, 1.0));
        assert!((pts[2].1 - 0.01).abs() < 1e-12); // 1 in 100 at >= 40 us
    }

    #[test]
    fn plots_are_written() {
        let dir = std::env::temp_dir().join(format!("rebal-plot-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let stats = dir.join("s.jsonl");
        fs::write(
            &stats,
            "{\"t\":1,\"domains\":[{\"load\":2},{\"load\":0}]}\n",
        )
        .unwrap();
        plot_load(&stats, &dir.join("load.svg"), "t").unwrap();
        let hist = dir.join("h.txt");
        fs::write(&hist, "1 10\n3 5\n").unwrap();
        let s = vec![format!("a={}", hist.display())];
        plot_latency(&s, &dir.join("lat.svg"), "t").unwrap();
        assert!(
            fs::read_to_string(dir.join("lat.svg"))
                .unwrap()
                .contains("p99 3 us")
        );
        assert!(plot_latency(&["nofile".into()], &dir.join("x.svg"), "t").is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
