//! `gacha report DIR`: (re)write DIR/report.html from a results folder.

use crate::cli::ReportArgs;
use crate::cmd::Outcome;
use crate::report::write_report;
use crate::results::layout::ResultsDir;

pub fn run(args: &ReportArgs) -> anyhow::Result<Outcome> {
    let results = ResultsDir::new(&args.dir);
    let spec = results.read_spec()?;
    let records = results.read_records(&spec)?;
    let path = write_report(&results, &spec, &records)?;
    super::stdout::print(&format!("{}\n", path.display()))?;
    Ok(Outcome::Success)
}
