//! `report.html`: one self-contained page of a run, built from sections. The page holds
//! everything it shows: inline CSS, the plots as inline SVG (from [`super`]'s plotting code),
//! thumbnails as `data:` URIs; it names no external resource (no `http://`, no fonts, no scripts),
//! so it opens offline and can be mailed as one file. Links to other local files are relative
//! (the Table 11 page links each benchmark's own `report.html`).
//!
//! All text that comes from data (class names, image ids, paths, titles) goes through
//! [`escape`]; markup is carried as [`Html`], which only this module's builders make (and
//! [`Html::trusted`] for callers that build their own). The section builders know nothing of
//! protocols: [`crate::protocol`] composes them into a run's page.

use std::fmt::Write as _;

use super::inspect::{ConfusionMatrix, Misfit, Verdict};
use super::{ResultsTable, split_text};

/// Escapes `s` for HTML text and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A fragment of markup, safe to put into the page: made by this module's builders (which
/// escape all data), or declared so by [`Html::trusted`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    /// Markup the caller vouches for (no unescaped data in it).
    pub fn trusted(markup: impl Into<String>) -> Self {
        Html(markup.into())
    }

    /// Escaped text.
    pub fn text(s: &str) -> Self {
        Html(escape(s))
    }

    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `self` followed by `other`.
    pub fn then(mut self, other: Html) -> Self {
        self.0.push_str(&other.0);
        self
    }
}

/// A paragraph of escaped text.
pub fn paragraph(text: &str) -> Html {
    Html(format!("<p>{}</p>\n", escape(text)))
}

/// A note (smaller, grey) of escaped text.
pub fn note(text: &str) -> Html {
    Html(format!("<p class=\"note\">{}</p>\n", escape(text)))
}

/// A link to a local file, relative to the page (`href` escaped).
pub fn link(href: &str, text: &str) -> Html {
    Html(format!("<a href=\"{}\">{}</a>", escape(href), escape(text)))
}

/// A table with a header row and rows of cells (already markup).
pub fn table(header: &[&str], rows: &[Vec<Html>]) -> Html {
    let mut s = String::from("<table class=\"data\">\n<thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", escape(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", c.0);
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    Html(s)
}

/// A two-column table of facts (name, value), values escaped; long values wrap.
pub fn facts(rows: &[(String, String)]) -> Html {
    let mut s = String::from("<table class=\"facts\">\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
    }
    s.push_str("</table>\n");
    Html(s)
}

/// A collapsed block showing `value` as pretty JSON.
pub fn json_details(summary: &str, value: &serde_json::Value) -> Html {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|e| e.to_string());
    Html(format!(
        "<details><summary>{}</summary><pre>{}</pre></details>\n",
        escape(summary),
        escape(&pretty)
    ))
}

/// An SVG document (as [`super`]'s plots write it) inline in the page: the XML declaration and
/// the `xmlns` attribute are dropped (HTML's parser needs neither, and the page then names no
/// URL at all); the SVG scales down to the page's width.
pub fn inline_svg(svg: &str) -> Html {
    let svg = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    Html(format!("<div class=\"plot\">{svg}</div>\n"))
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

/// The headline number of `table` (its mean, with mean ± std over splits when given), and the
/// paper's number beside it when given.
pub fn headline(table: &ResultsTable, paper: Option<&str>) -> Html {
    let ours = match &table.splits {
        Some(sp) => format!("{} %, mean ± std over {} splits", split_text(sp), sp.n),
        None => format!("{} %", pct(table.mean)),
    };
    let mut s = format!(
        "<p class=\"headline\">mean {}: <b>{}</b>",
        escape(&table.metric),
        escape(&ours)
    );
    if let Some(p) = paper {
        let _ = write!(s, " <span class=\"paper\">(paper: {} %)</span>", escape(p));
    }
    s.push_str("</p>\n");
    Html(s)
}

/// The per-class results table: score in percent, ± std over splits when given, a bar; the mean
/// (and the paper's number, when given) below; then the classes that were not scored.
pub fn results_table(table: &ResultsTable, paper: Option<&str>) -> Html {
    let has_std = table.classes.iter().any(|c| c.std.is_some());
    let metric = escape(&table.metric);
    let mut s =
        format!("<table class=\"data results\">\n<thead><tr><th>class</th><th>{metric} (%)</th>");
    if has_std {
        s.push_str("<th>± std</th>");
    }
    s.push_str("<th></th></tr></thead>\n<tbody>\n");
    for c in &table.classes {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"num\">{}</td>",
            escape(&c.name),
            pct(c.score)
        );
        if has_std {
            let _ = write!(
                s,
                "<td class=\"num\">{}</td>",
                c.std.map(pct).unwrap_or_default()
            );
        }
        let w = (100.0 * c.score).clamp(0.0, 100.0);
        let _ = writeln!(
            s,
            "<td class=\"bar\"><div style=\"width:{w:.1}%\"></div></td></tr>"
        );
    }
    s.push_str("</tbody>\n<tfoot>");
    let blank = if has_std {
        "<td></td><td></td>"
    } else {
        "<td></td>"
    };
    let _ = write!(
        s,
        "<tr><th>mean</th><td class=\"num\"><b>{}</b></td>{blank}</tr>",
        pct(table.mean)
    );
    if let Some(sp) = &table.splits {
        let _ = write!(
            s,
            "<tr><th>mean over {} splits</th><td class=\"num\">{}</td>{blank}</tr>",
            sp.n,
            escape(&split_text(sp))
        );
    }
    if let Some(p) = paper {
        let _ = write!(
            s,
            "<tr class=\"paper\"><th>paper</th><td class=\"num\">{}</td>{blank}</tr>",
            escape(p)
        );
    }
    s.push_str("</tfoot></table>\n");
    if !table.unscored.is_empty() {
        s.push_str("<p>Not scored (left out of the mean):</p>\n<ul>\n");
        for u in &table.unscored {
            let _ = writeln!(s, "<li>{}: {}</li>", escape(&u.name), escape(&u.reason));
        }
        s.push_str("</ul>\n");
    }
    Html(s)
}

/// The confusion matrix as a heat-map table: rows are true classes, columns predicted ones;
/// a cell's colour is its share of the row (green on the diagonal, red off it), empty cells are
/// blank, and every non-empty cell and header says what it is on hover (`title`). Counts are
/// printed in the cells up to 30 classes; beyond, the table is a compact map (8-pixel cells) and
/// the largest confusions are listed below it.
pub fn confusion_matrix(m: &ConfusionMatrix) -> Html {
    let k = m.classes.len();
    let compact = k > 30;
    let mut s = format!(
        "<p>{} of {} test images on the diagonal ({:.1} %), summed over the sets. Rows: true \
         class; columns: predicted class (the argmax of the decision values). Hover a cell for \
         its count.</p>\n",
        m.correct(),
        m.total(),
        if m.total() > 0 {
            100.0 * m.correct() as f64 / m.total() as f64
        } else {
            0.0
        }
    );
    let _ = write!(
        s,
        "<div class=\"cm-wrap\"><table class=\"cm{}\">\n<thead><tr><th></th>",
        if compact { " compact" } else { "" }
    );
    for (j, c) in m.classes.iter().enumerate() {
        let label = if compact {
            String::new()
        } else {
            (j + 1).to_string()
        };
        let _ = write!(
            s,
            "<th title=\"predicted {}: {}\">{label}</th>",
            j + 1,
            escape(c)
        );
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for (t, row) in m.counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        let name = escape(&m.classes[t]);
        let _ = write!(s, "<tr><th title=\"{name}\">{} {name}</th>", t + 1);
        for (p, &n) in row.iter().enumerate() {
            if n == 0 {
                s.push_str("<td></td>");
                continue;
            }
            let share = n as f64 / total.max(1) as f64;
            let (r, g, b) = if p == t { (30, 150, 60) } else { (210, 40, 40) };
            let alpha = 0.15 + 0.85 * share;
            let ink = if alpha > 0.6 { " class=\"ink\"" } else { "" };
            let _ = write!(
                s,
                "<td{ink} style=\"background:rgba({r},{g},{b},{alpha:.2})\" title=\"true {}, \
                 predicted {}: {n} ({:.0} % of the class)\">{}</td>",
                name,
                escape(&m.classes[p]),
                100.0 * share,
                if compact {
                    String::new()
                } else {
                    n.to_string()
                }
            );
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></div>\n");
    // The largest confusions in words: what a compact map cannot print.
    let mut off: Vec<(usize, usize, usize)> = (0..k)
        .flat_map(|t| (0..k).map(move |p| (t, p)))
        .filter(|&(t, p)| t != p && m.counts[t][p] > 0)
        .map(|(t, p)| (m.counts[t][p], t, p))
        .collect();
    off.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    if !off.is_empty() {
        s.push_str("<p>Largest confusions:</p>\n<ol class=\"confusions\">\n");
        for &(n, t, p) in off.iter().take(10) {
            let _ = writeln!(
                s,
                "<li>{} → {}: {n}</li>",
                escape(&m.classes[t]),
                escape(&m.classes[p])
            );
        }
        s.push_str("</ol>\n");
    }
    Html(s)
}

/// A worst-classified image with its thumbnail: a `data:` URI, or why there is none.
pub type Thumbed<'a> = (&'a Misfit, Result<String, String>);

/// The worst-classified images as a grid of cards: the thumbnail (or a placeholder with the
/// reason it could not be read), the image id, true and predicted labels with their decision
/// values, and the margin.
pub fn misfits(items: &[Thumbed<'_>]) -> Html {
    let mut s = String::from("<div class=\"misfits\">\n");
    for (m, thumb) in items {
        s.push_str("<figure>");
        match thumb {
            Ok(uri) if uri.starts_with("data:image/") => {
                let _ = write!(s, "<img src=\"{}\" alt=\"{}\">", escape(uri), escape(&m.id));
            }
            Ok(_) => s.push_str("<div class=\"missing\">not an image data URI</div>"),
            Err(why) => {
                let _ = write!(
                    s,
                    "<div class=\"missing\">no thumbnail: {}</div>",
                    escape(why)
                );
            }
        }
        let _ = write!(
            s,
            "<figcaption><code>{}</code> <span class=\"set\">{}</span><br>",
            escape(&m.id),
            escape(&m.set)
        );
        match &m.verdict {
            Verdict::SingleLabel {
                truth,
                truth_score,
                predicted,
                runner_up,
                runner_up_score,
            } => {
                let _ = write!(
                    s,
                    "true: <b>{}</b> ({truth_score:.3})<br>predicted: <b class=\"{}\">{}</b><br>\
                     best other: {} ({runner_up_score:.3})<br>",
                    escape(truth),
                    if predicted == truth { "ok" } else { "bad" },
                    escape(predicted),
                    escape(runner_up),
                );
            }
            Verdict::Binary {
                class,
                positive,
                score,
            } => {
                let what = if *positive {
                    "positive scored low"
                } else {
                    "negative scored high"
                };
                let _ = write!(
                    s,
                    "<b>{}</b>: {what} ({score:.3})<br>labels: {}<br>",
                    escape(class),
                    escape(&m.labels.join(", "))
                );
            }
        }
        let _ = writeln!(s, "margin {:.3}</figcaption></figure>", m.margin);
    }
    s.push_str("</div>\n");
    Html(s)
}

const CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;\
margin:0 auto;max-width:1200px;padding:16px 24px;color:#1d1d1f;background:#fff}\
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;\
padding-bottom:4px;margin-top:32px}\
nav a{margin-right:12px}.note,.generated{color:#666;font-size:12px}\
.headline{font-size:18px}.paper{color:#7a4b00}\
table.data{border-collapse:collapse;margin:8px 0}\
table.data td,table.data th{border-bottom:1px solid #eee;padding:2px 10px;text-align:left}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
td.bar{width:240px}td.bar div{background:#5b7fd1;height:10px;border-radius:2px}\
tr.paper th,tr.paper td{color:#7a4b00}\
table.facts{border-collapse:collapse}table.facts th{text-align:left;vertical-align:top;\
padding:2px 16px 2px 0;white-space:nowrap;color:#444}table.facts td{word-break:break-all}\
.plot svg{max-width:100%;height:auto}\
.cm-wrap{overflow:auto;max-height:1100px}table.cm{border-collapse:collapse;font-size:11px}\
table.cm td{width:22px;height:18px;text-align:center;border:1px solid #f0f0f0;padding:0}\
table.cm td.ink{color:#fff}\
table.cm thead th{font-weight:normal;color:#666;min-width:22px}\
table.cm tbody th{text-align:right;font-weight:normal;white-space:nowrap;padding-right:6px;\
max-width:220px;overflow:hidden;text-overflow:ellipsis}\
table.cm.compact td{width:8px;height:8px;font-size:0}\
table.cm.compact thead th{min-width:8px}\
table.cm.compact tbody th{font-size:9px;line-height:8px}\
.misfits{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}\
.misfits figure{margin:0;border:1px solid #ddd;border-radius:4px;padding:8px;font-size:12px}\
.misfits img{display:block;max-width:100%;max-height:128px;margin:0 auto 6px}\
.misfits .missing{height:96px;background:#f3f3f3;color:#a00;display:flex;\
align-items:center;justify-content:center;text-align:center;padding:4px;margin-bottom:6px;\
word-break:break-word}\
.misfits code{word-break:break-all}.set{color:#666}.bad{color:#b00}.ok{color:#070}\
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}\
";

/// A page being built: a title and sections in order.
#[derive(Debug, Clone)]
pub struct Page {
    title: String,
    generated: String,
    sections: Vec<(String, String, Html)>,
}

impl Page {
    /// An empty page with `title`; `generated` is a line under it (tool version, date).
    pub fn new(title: &str, generated: &str) -> Self {
        Page {
            title: title.to_string(),
            generated: generated.to_string(),
            sections: Vec::new(),
        }
    }

    /// Adds a section with a heading (escaped) and a body; `id` is its anchor (letters, digits
    /// and `-` kept, anything else made `-`).
    pub fn section(&mut self, id: &str, heading: &str, body: Html) -> &mut Self {
        let id: String = id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.sections.push((id, heading.to_string(), body));
        self
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let mut s = format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
             <p class=\"generated\">{}</p>\n<nav>",
            escape(&self.title),
            escape(&self.title),
            escape(&self.generated)
        );
        for (id, heading, _) in &self.sections {
            let _ = write!(s, "<a href=\"#{id}\">{}</a>", escape(heading));
        }
        s.push_str("</nav>\n");
        for (id, heading, body) in &self.sections {
            let _ = write!(
                s,
                "<section id=\"{id}\">\n<h2>{}</h2>\n{}</section>\n",
                escape(heading),
                body.0
            );
        }
        s.push_str("</body>\n</html>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::inspect::confusion_matrix as cm_of;
    use crate::report::{ClassScore, Scores};

    const HOSTILE: &str = "<script>alert('x')</script>&\"";

    #[test]
    fn escapes_what_html_needs() {
        assert_eq!(
            escape(HOSTILE),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    /// A class named like a script, an id like an attribute break-out: everywhere on the page
    /// (table, chart, confusion matrix, cards, facts, title) they come out as text.
    #[test]
    fn a_hostile_class_name_stays_text() {
        let table = ResultsTable::new(
            HOSTILE,
            "recall",
            vec![ClassScore::new(HOSTILE, 0.5), ClassScore::new("dog", 1.0)],
            0.75,
        )
        .unwrap();
        let scores = Scores {
            set: "split0".into(),
            ids: vec!["a\" onerror=\"x".into(), "b".into()],
            labels: vec![vec![HOSTILE.into()], vec!["dog".into()]],
            classes: vec![HOSTILE.into(), "dog".into()],
            values: ndarray::array![[0.1, 0.9], [0.0, 1.0]],
        };
        let m = cm_of(std::slice::from_ref(&scores)).unwrap();
        let worst = crate::report::inspect::worst_single_label(&[scores], 2).unwrap();
        let cards: Vec<Thumbed<'_>> = worst.iter().map(|w| (w, Err(HOSTILE.into()))).collect();
        let mut page = Page::new(HOSTILE, HOSTILE);
        page.section("t", HOSTILE, results_table(&table, Some(HOSTILE)))
            .section("b", "bars", inline_svg(&table.bar_chart_svg().unwrap()))
            .section("c", "cm", confusion_matrix(&m))
            .section("w", "worst", misfits(&cards))
            .section("p", "prov", facts(&[(HOSTILE.into(), HOSTILE.into())]));
        let html = page.render();
        assert!(!html.contains("<script"), "a raw <script> tag in the page");
        assert!(!html.contains("onerror=\"x"), "an attribute broke out");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
