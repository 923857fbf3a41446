//! `gacha demo-data`: write the demo dataset from a seed and print what it holds.

use std::fmt::Write as _;

use crate::cli::DemoDataArgs;
use crate::demo::{self, AdClass, DemoFormat, DemoSummary, ViolationKind};

pub fn run(args: &DemoDataArgs) -> anyhow::Result<crate::cmd::Outcome> {
    let summary = demo::generate_demo_dataset(&args.out, args.seed)?;
    super::stdout::print(&render_summary(&summary))?;
    Ok(crate::cmd::Outcome::Success)
}

/// The summary printed on stdout: counts by format and class, violation kinds, GIF frames.
fn render_summary(summary: &DemoSummary) -> String {
    let mut s = String::new();
    let kib = summary.total_bytes() as f64 / 1024.0;
    let _ = writeln!(
        s,
        "wrote {}: {} images ({kib:.0} KiB), seed {}",
        summary.data.display(),
        summary.images.len(),
        summary.seed
    );
    let _ = writeln!(s, "\n{:<8}{:>18}{:>16}{:>7}", "format", "acceptable (yes)", "violating (no)", "total");
    let formats = DemoFormat::ALL.map(Some).into_iter().chain([None]);
    for format in formats {
        let name = format.map_or("total", DemoFormat::extension);
        let [ok, ng] = AdClass::ALL.map(|class| summary.count(format, Some(class)));
        let _ = writeln!(s, "{name:<8}{ok:>18}{ng:>16}{:>7}", summary.count(format, None));
    }
    let kinds = [ViolationKind::Burst, ViolationKind::StrikedPrice, ViolationKind::Both].map(|kind| {
        format!("{} {}", kind.name(), summary.images.iter().filter(|i| i.violation == Some(kind)).count())
    });
    let _ = writeln!(s, "\nviolations: {}", kinds.join(", "));
    let _ = writeln!(s, "animated GIFs (frames 0-based):");
    for img in summary.images.iter().filter(|img| img.format == DemoFormat::Gif) {
        let shown = match img.class {
            AdClass::Acceptable => "acceptable".to_string(),
            AdClass::Violating => format!("violation in frames {:?}", img.violation_frames),
        };
        let _ = writeln!(s, "  {}  {} frames  {shown}", img.file, img.frames);
    }
    s
}
