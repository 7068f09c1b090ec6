//! The risk distribution as an SVG bar chart drawn on the server: no script, no
//! library, readable without colour (each bar is labelled with its level and count).

use maud::{Markup, html};

use mcpwatch_protocol::risk::RiskLevel;

const WIDTH: u64 = 360;
const BAR: u64 = 22;
const GAP: u64 = 10;
const LABEL: u64 = 70;

fn colour(level: RiskLevel) -> &'static str {
    match level {
        RiskLevel::Critical => "#a3161b",
        RiskLevel::High => "#c2410c",
        RiskLevel::Medium => "#a16207",
        RiskLevel::Low => "#3f6212",
    }
}

/// Horizontal bars, one per level (most severe first), scaled to the largest.
pub fn distribution(counts: &[(RiskLevel, u64)]) -> Markup {
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let span = WIDTH - LABEL - 60;
    let height = counts.len() as u64 * (BAR + GAP);
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let summary = counts
        .iter()
        .map(|(l, n)| format!("{} {n}", l.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" role="img" width="100%"
            viewBox={ "0 0 " (WIDTH) " " (height) } preserveAspectRatio="xMinYMin meet"
            aria-label={ "Servers by risk level: " (summary) " (" (total) " in all)" } {
            @for (i, (level, n)) in counts.iter().enumerate() {
                @let y = i as u64 * (BAR + GAP);
                @let w = if *n == 0 { 0 } else { (n * span / max).max(2) };
                text x="0" y=(y + BAR / 2 + 4) { (level.as_str()) }
                rect x=(LABEL) y=(y) width=(w) height=(BAR) rx="3" fill=(colour(*level)) {}
                text x=(LABEL + w + 6) y=(y + BAR / 2 + 4) data-level=(level.as_str()) { (n) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_say_their_numbers() {
        let svg = distribution(&[(RiskLevel::Critical, 5), (RiskLevel::Low, 0)]).into_string();
        assert!(svg.contains(r#"width="230""#), "{svg}");
        assert!(svg.contains(r#"data-level="low">0<"#), "{svg}");
        assert!(svg.contains("critical 5, low 0 (5 in all)"), "{svg}");
    }
}
