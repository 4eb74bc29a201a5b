//! The one table `make bench` prints: a row per figure, dynport beside the
//! baseline and the two floors, the target and PASS or MISS.

use std::time::Duration;

/// Servers with a column of their own, in the order of `Row::values`.
pub const SERVERS: usize = 4;

const HEADERS: [&str; SERVERS + 3] = [
    "figure",
    "dynport",
    "baseline",
    "floor a: tiny_http",
    "floor b: engine",
    "target",
    "result",
];

/// One row. `verdict` is `None` for figures without a target.
pub struct Row {
    pub figure: String,
    /// dynport, the baseline, floor a, floor b; empty where not measured.
    pub values: [String; SERVERS],
    pub target: String,
    pub verdict: Option<bool>,
}

impl Row {
    /// A row with a value for each server and no target.
    pub fn info(figure: &str, values: [String; SERVERS]) -> Row {
        Row {
            figure: figure.to_string(),
            values,
            target: String::new(),
            verdict: None,
        }
    }

    /// A row for dynport alone, without a target.
    pub fn dynport(figure: &str, value: String) -> Row {
        let mut values: [String; SERVERS] = Default::default();
        values[0] = value;
        Row::info(figure, values)
    }

    /// A row for dynport alone, checked against `target`.
    pub fn check(figure: &str, value: String, target: &str, pass: bool) -> Row {
        Row::dynport(figure, value).with_target(target, pass)
    }

    /// Adds a target to a row of values.
    pub fn with_target(mut self, target: &str, pass: bool) -> Row {
        self.target = target.to_string();
        self.verdict = Some(pass);
        self
    }
}

/// The table as plain text, columns aligned, numbers to the right. A
/// server's column with no value in any row (the baseline without
/// `--baseline`, the floors in a lease-only run) is left out.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows.iter().map(cells_of).collect();
    let shown: Vec<usize> = (0..HEADERS.len())
        .filter(|&i| !(1..=SERVERS).contains(&i) || cells.iter().any(|row| !row[i].is_empty()))
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let last = HEADERS.len() - 1;
    let line = |row: &[String]| {
        let mut out = String::new();
        for &i in &shown {
            let (cell, width) = (&row[i], widths[i]);
            let pad = " ".repeat(width - cell.chars().count());
            if i == 0 || i > SERVERS {
                out.push_str(&format!("{cell}{pad}"));
            } else {
                out.push_str(&format!("{pad}{cell}"));
            }
            out.push_str(if i < last { " | " } else { "" });
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(str::to_string));
    let rule: Vec<String> = shown.iter().map(|&i| "-".repeat(widths[i])).collect();
    out.push_str(&(rule.join("-|-") + "\n"));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

fn cells_of(r: &Row) -> Vec<String> {
    let mut cells = vec![r.figure.clone()];
    cells.extend(r.values.iter().cloned());
    cells.push(r.target.clone());
    cells.push(match r.verdict {
        Some(true) => "PASS".to_string(),
        Some(false) => "MISS".to_string(),
        None => String::new(),
    });
    cells
}

/// The median of `values`; 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q` quantile (0..=1) of sorted durations, by nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_without_a_value_are_left_out() {
        let rows = [
            Row::check("grants/s", "6000".to_string(), ">= 3000/s", true),
            Row::info(
                "p50 (ms)",
                ["0.6".into(), "0.5".into(), String::new(), String::new()],
            ),
        ];
        let text = render(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "figure   | dynport | baseline | target    | result",
                "---------|---------|----------|-----------|-------",
                "grants/s |    6000 |          | >= 3000/s | PASS",
                "p50 (ms) |     0.6 |      0.5 |           |",
            ]
        );
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
    }

    #[test]
    fn quantile_takes_the_nearest_rank() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&d, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&d, 0.99), Duration::from_millis(99));
    }
}
