//! `leaderboard.csv`: one row per finished trial in leaderboard order, the columns of
//! `columns.rs`, undefined values as empty cells.

use super::columns::columns;
use crate::results::record::TrialRecord;

/// The leaderboard as CSV bytes (a header row even when no trial has finished).
pub fn leaderboard_csv(ranked: &[&TrialRecord]) -> Vec<u8> {
    let cols = columns();
    let header: Vec<String> = cols.iter().map(|c| c.name()).collect();
    let rows = ranked.iter().map(|record| cols.iter().map(|c| c.cell(record)).collect::<Vec<_>>());
    csv_bytes(std::iter::once(header).chain(rows))
}

/// Rows of cells as CSV bytes.
pub(super) fn csv_bytes(rows: impl Iterator<Item = Vec<String>>) -> Vec<u8> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(&row).expect("writing to memory cannot fail");
    }
    writer.into_inner().expect("flushing to memory cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::record::Status;
    use crate::results::test_records::record;

    #[test]
    fn writes_exact_bytes() {
        let done = record("0123456789ab", Status::Done, [3, 4, 1, 2], Some(0.125));
        let failed = record("ba9876543210", Status::Failed, [0, 0, 0, 0], None);
        let got = String::from_utf8(leaderboard_csv(&[&done, &failed])).unwrap();
        let scores = |prefix: &str| {
            ["train", "valid", "all"]
                .map(|split| {
                    ["tp", "tn", "fp", "fn", "accuracy", "precision", "recall", "f1"]
                        .map(|stat| format!("{prefix}{split}_{stat}"))
                        .join(",")
                })
                .join(",")
        };
        let header = format!(
            "id,config,status,seed,reseeds,valid,repeat,fold,learning_rate,prompt,steps,final_loss,batch_size,grad_accum,\
             log_every,lora_alpha,lora_rank,lora_targets,optimizer,schedule,trainable,warmup_steps,\
             stage2,diverged_step,error,{},{},training_s,trial_s,started_at,finished_at\n",
            scores(""),
            scores("base_")
        );
        // Done: train 4/4/0/0 → 1, 1, 1, 1; valid tp 3 tn 4 fp 1 fn 2 → accuracy 7/10,
        // precision 3/4, recall 3/5, f1 6/9; all 7/8/1/2 → 15/18, 7/8, 7/9, 14/17.
        // Before (both): train 0/4/0/4 → 0.5, undefined, 0, 0; valid 0/5/0/5 → the same;
        // all 0/9/0/9.
        let params = "0.03,\"Is it \"\"ok\"\"?\",4";
        let rest = "2,1,8,16.0,8,q k v o,sgd,cosine,lora,0";
        let base =
            "0,4,0,4,0.5000,,0.0000,0.0000,0,5,0,5,0.5000,,0.0000,0.0000,0,9,0,9,0.5000,,0.0000,0.0000";
        let times = "1.500,2.250,2026-01-02T03:04:05Z,2026-01-02T03:04:07Z";
        let done_row = format!(
            "0123456789ab,c0c0c0c0c0c0,done,1,0,10,,,{params},0.125,{rest},,,,\
             4,4,0,0,1.0000,1.0000,1.0000,1.0000,\
             3,4,1,2,0.7000,0.7500,0.6000,0.6667,\
             7,8,1,2,0.8333,0.8750,0.7778,0.8235,{base},{times}\n"
        );
        let empty_after = [",,,,,,,"; 3].join(",");
        // "out of memory" is a failure of the environment: its error cell says it is retried.
        let error = "\"environment, retried on the next run: out of memory, at step 2\"";
        let failed_row =
            format!("ba9876543210,c0c0c0c0c0c0,failed,1,0,10,,,{params},,{rest},,,{error},{empty_after},{base},{times}\n");
        let expected = header + &done_row + &failed_row;
        assert_eq!(got, expected, "\n--- got\n{got}\n--- expected\n{expected}");
    }
}
