//! Predictive disk-full: a least-squares line through a node's disk use over the last day (the
//! 30-minute roll-ups' averages, plus the newest live value) says when it reaches 100 %.

/// How far back the fit looks.
pub const FIT_SPAN: i64 = 86_400;
/// The roll-up tier the fit reads (the finest: 30 minutes), and its period in seconds.
pub const FIT_TIER: &str = dsmon_store::ROLLUPS[0].0;
pub const FIT_TIER_SECS: i64 = dsmon_store::ROLLUPS[0].1;
/// The points must span at least this long (a steep minute says nothing about a day).
pub const MIN_SPAN: i64 = 3600;

/// Seconds from `now` until the disk is full, from `(ts, percent)` points; `None` when it is not
/// filling (flat or shrinking) or there is too little to fit.
pub fn seconds_to_full(points: &[(i64, f64)], now: i64) -> Option<f64> {
    let points: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, y)| y.is_finite())
        .map(|&(t, y)| ((t - now) as f64, y))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let (first, last) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if last - first < MIN_SPAN as f64 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let cov: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if var <= 0.0 {
        return None;
    }
    let slope = cov / var; // percent per second
    if slope <= 1e-9 {
        return None;
    }
    // The line's value now (x = 0), never below the newest point seen.
    let newest = points
        .iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(0.0, |p| p.1);
    let at_now = (my - slope * mx).max(newest);
    Some(((100.0 - at_now) / slope).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rise_reaches_full_when_the_line_says() {
        // 40 % six hours ago, 70 % now: 5 % an hour, 30 % to go -> 6 hours.
        let now = 1_000_000;
        let pts: Vec<(i64, f64)> = (0..=12)
            .map(|i| (now - 6 * 3600 + i * 1800, 40.0 + 2.5 * i as f64))
            .collect();
        let s = seconds_to_full(&pts, now).unwrap();
        assert!((s - 6.0 * 3600.0).abs() < 60.0, "{s}");
    }

    #[test]
    fn flat_shrinking_or_too_little_is_not_filling() {
        let now = 1_000_000;
        let flat: Vec<(i64, f64)> = (0..10).map(|i| (now - i * 1800, 50.0)).collect();
        assert_eq!(seconds_to_full(&flat, now), None);
        let shrink: Vec<(i64, f64)> = (0..10).map(|i| (now - i * 1800, 50.0 + i as f64)).collect();
        assert_eq!(seconds_to_full(&shrink, now), None);
        assert_eq!(seconds_to_full(&[(now - 60, 10.0), (now, 90.0)], now), None);
        let short: Vec<(i64, f64)> = (0..10).map(|i| (now - i * 60, 90.0 - i as f64)).collect();
        assert_eq!(seconds_to_full(&short, now), None, "span under an hour");
    }
}
