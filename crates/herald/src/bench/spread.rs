//! Repeated runs (`herald bench --repeat N`): runs on a shared machine differ (BENCHMARKS.md
//! saw the same binary's throughput vary by a quarter between runs), so a figure is reported as
//! the median of its runs with their range.

use std::fmt::Write as _;

use serde::Serialize;

use super::report::{Report, round};

/// Repeated runs (`--repeat`): each headline figure's median and range.
pub struct Spread {
    figures: Vec<(String, Figure)>,
}

/// One headline figure over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: Vec<f64>,
}

impl Figure {
    fn of(mut runs: Vec<f64>) -> Self {
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        runs.iter_mut().for_each(|x| *x = round(*x, 4));
        Self {
            median: round(median, 4),
            min: sorted[0],
            max: sorted[n - 1],
            runs,
        }
    }
}

/// Top-level numbers of the report that describe the run, not what it measured.
const NOT_FIGURES: [&str; 2] = ["duration_s", "wall_s"];

impl Spread {
    /// The figures every run measured (a figure some run lacks is left out). `reports` is not
    /// empty.
    pub fn of(reports: &[Report]) -> Self {
        let values: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        let mut figures = Vec::new();
        let Some(first) = values.first().and_then(|v| v.as_object()) else {
            return Self { figures };
        };
        for key in first.keys().filter(|k| !NOT_FIGURES.contains(&k.as_str())) {
            let runs: Option<Vec<f64>> = values.iter().map(|v| v.get(key)?.as_f64()).collect();
            if let Some(runs) = runs.filter(|r| !r.is_empty()) {
                figures.push((key.clone(), Figure::of(runs)));
            }
        }
        Self { figures }
    }

    /// The first run's report with each figure replaced by its median, plus `repeat`, `spread`
    /// (each figure's median, min, max and values) and `runs` (every run's report).
    pub fn to_json(&self, reports: &[Report]) -> String {
        let runs: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_default())
            .collect();
        let mut out = runs.first().cloned().unwrap_or_default();
        if let Some(object) = out.as_object_mut() {
            for (key, figure) in &self.figures {
                object.insert(key.clone(), serde_json::json!(figure.median));
            }
            object.insert("repeat".into(), serde_json::json!(reports.len()));
            let spread: serde_json::Map<String, serde_json::Value> = self
                .figures
                .iter()
                .map(|(k, f)| (k.clone(), serde_json::to_value(f).unwrap_or_default()))
                .collect();
            object.insert("spread".into(), spread.into());
            object.insert("runs".into(), runs.into());
        }
        out.to_string()
    }

    /// The figures' medians and ranges, then each run's own tables.
    pub fn to_markdown(&self, reports: &[Report]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## Herald benchmark: {} runs\n\n| figure | median | min – max | runs |\n|---|---|---|---|",
            reports.len()
        );
        for (key, f) in &self.figures {
            let runs: Vec<String> = f.runs.iter().map(|x| format!("{x}")).collect();
            let _ = writeln!(
                out,
                "| `{key}` | {} | {} – {} | {} |",
                f.median,
                f.min,
                f.max,
                runs.join(", ")
            );
        }
        for (i, report) in reports.iter().enumerate() {
            let _ = writeln!(out, "\n### Run {}\n\n{}", i + 1, report.to_markdown());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_figure_is_the_median_of_its_runs_with_their_range() {
        let mut reports: Vec<Report> = (0..3)
            .map(|_| super::super::report::tests::sample())
            .collect();
        for (report, ratio) in reports.iter_mut().zip([0.30, 0.10, 0.20]) {
            report.ratio = ratio;
        }
        reports[1].pg3_throughput_rps = None;
        let spread = Spread::of(&reports);
        let json: serde_json::Value = serde_json::from_str(&spread.to_json(&reports)).unwrap();
        assert_eq!(json["repeat"], 3);
        assert_eq!(json["ratio"], 0.2);
        assert_eq!(json["spread"]["ratio"]["min"], 0.1);
        assert_eq!(json["spread"]["ratio"]["max"], 0.3);
        assert_eq!(
            json["spread"]["ratio"]["runs"],
            serde_json::json!([0.3, 0.1, 0.2])
        );
        assert_eq!(json["runs"].as_array().unwrap().len(), 3);
        // Not measured in every run: no spread, the first run's value stays.
        assert!(json["spread"].get("pg3_throughput_rps").is_none());
        assert!(json["spread"].get("wall_s").is_none());
        let markdown = spread.to_markdown(&reports);
        assert!(
            markdown.contains("| `ratio` | 0.2 | 0.1 – 0.3 | 0.3, 0.1, 0.2 |"),
            "{markdown}"
        );
        assert!(markdown.contains("### Run 3"));
    }
}
