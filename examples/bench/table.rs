//! The one table `make bench` prints: a row per figure, dynport beside the
//! two floors, the target and PASS or MISS.

use std::time::Duration;

/// One row. `verdict` is `None` for figures without a target.
pub struct Row {
    pub figure: String,
    pub dynport: String,
    pub floor_a: String,
    pub floor_b: String,
    pub target: String,
    pub verdict: Option<bool>,
}

impl Row {
    /// A row with a value for each server and no target.
    pub fn info(figure: &str, values: [String; 3]) -> Row {
        let [dynport, floor_a, floor_b] = values;
        Row {
            figure: figure.to_string(),
            dynport,
            floor_a,
            floor_b,
            target: String::new(),
            verdict: None,
        }
    }

    /// A row for dynport alone, checked against `target`.
    pub fn check(figure: &str, value: String, target: &str, pass: bool) -> Row {
        Row {
            figure: figure.to_string(),
            dynport: value,
            floor_a: String::new(),
            floor_b: String::new(),
            target: target.to_string(),
            verdict: Some(pass),
        }
    }

    /// Adds a target to a row of values.
    pub fn with_target(mut self, target: &str, pass: bool) -> Row {
        self.target = target.to_string();
        self.verdict = Some(pass);
        self
    }
}

const HEADERS: [&str; 6] = [
    "figure",
    "dynport",
    "floor a: tiny_http",
    "floor b: engine",
    "target",
    "result",
];

/// The table as plain text, columns aligned, numbers to the right.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.dynport.clone(),
                r.floor_a.clone(),
                r.floor_b.clone(),
                r.target.clone(),
                match r.verdict {
                    Some(true) => "PASS".to_string(),
                    Some(false) => "MISS".to_string(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 6]| {
        let mut out = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            match i {
                0 | 4 | 5 => out.push_str(&format!("{cell}{pad}")),
                _ => out.push_str(&format!("{pad}{cell}")),
            }
            out.push_str(if i < 5 { " | " } else { "" });
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(str::to_string));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&(rule.join("-|-") + "\n"));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
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
