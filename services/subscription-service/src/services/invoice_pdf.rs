//! An invoice as a PDF: text on A4 pages in the standard Helvetica fonts (nothing embedded), written by hand
//! (a PDF of text is a few objects and a cross-reference table), so no layout engine is needed.

use std::fmt::Write as _;

use billing_domain::Currency;

use crate::services::invoices::InvoiceView;

/// A4 in points.
const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
/// Text rows a page holds below its heading.
const ROWS_PER_PAGE: usize = 44;
const ROW: f32 = 15.0;

/// One row of text: pieces at x positions, in a font (`F1` regular, `F2` bold); `right` pieces end at their x.
#[derive(Debug, Clone, Default)]
struct Row {
    bold: bool,
    cells: Vec<(f32, bool, String)>,
}

impl Row {
    fn text(bold: bool, text: impl Into<String>) -> Self {
        Self { bold, cells: vec![(MARGIN, false, text.into())] }
    }

    fn blank() -> Self {
        Self::default()
    }
}

/// The invoice's rows: heading, parties and dates, one row per line, totals, credit notes.
fn rows(view: &InvoiceView, customer: &str) -> Vec<Row> {
    let invoice = &view.invoice;
    let currency: Currency = invoice.currency;
    let money = |value| format!("{} {}", currency.render(value), currency.code());
    let day =
        |at: Option<chrono::DateTime<chrono::Utc>>| at.map_or("-".to_owned(), |at| at.format("%Y-%m-%d").to_string());
    let mut rows = vec![
        Row::text(true, format!("Invoice {}", invoice.number.as_deref().unwrap_or("(draft)"))),
        Row::blank(),
        Row::text(false, format!("Bill to: {customer}")),
        Row::text(false, format!("Status: {}    Kind: {}", invoice.status, invoice.kind)),
        Row::text(
            false,
            format!(
                "Issued: {}    Due: {}    Paid: {}",
                day(invoice.finalized_at),
                day(invoice.due_at),
                day(invoice.paid_at)
            ),
        ),
    ];
    if let (Some(start), Some(end)) = (invoice.period_start, invoice.period_end) {
        rows.push(Row::text(false, format!("Period: {} to {}", day(Some(start)), day(Some(end)))));
    }
    rows.push(Row::blank());
    let columns = |description: String, quantity: String, unit: String, amount: String, bold: bool| Row {
        bold,
        cells: vec![
            (MARGIN, false, description),
            (380.0, true, quantity),
            (460.0, true, unit),
            (WIDTH - MARGIN, true, amount),
        ],
    };
    rows.push(columns("Description".into(), "Qty".into(), "Unit price".into(), "Amount".into(), true));
    for line in &view.lines {
        let mut description = line.description.clone();
        if let (Some(start), Some(end)) = (line.period_start, line.period_end) {
            let _ = write!(description, " ({} to {})", day(Some(start)), day(Some(end)));
        }
        // Long descriptions wrap onto rows of their own, the figures on the first.
        let mut pieces = wrap(&description, 58).into_iter();
        let first = pieces.next().unwrap_or_default();
        rows.push(columns(
            first,
            line.quantity.to_string(),
            line.unit_amount.normalize().to_string(),
            currency.render(line.amount),
            false,
        ));
        rows.extend(pieces.map(|piece| Row { bold: false, cells: vec![(MARGIN + 10.0, false, piece)] }));
    }
    rows.push(Row::blank());
    let total = |label: &str, value, bold| Row {
        bold,
        cells: vec![(460.0, true, label.to_owned()), (WIDTH - MARGIN, true, money(value))],
    };
    rows.push(total("Subtotal", invoice.subtotal, false));
    rows.push(total("Total", invoice.total, true));
    rows.push(total("Paid", invoice.amount_paid, false));
    rows.push(total("Amount due", invoice.amount_due, true));
    if !view.credit_notes.is_empty() {
        rows.push(Row::blank());
        rows.push(Row::text(true, "Credit notes"));
        for note in &view.credit_notes {
            let reason = note.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            rows.push(Row {
                bold: false,
                cells: vec![
                    (MARGIN, false, format!("{} on {}{reason}", note.number, day(Some(note.created_at)))),
                    (WIDTH - MARGIN, true, money(note.amount)),
                ],
            });
        }
    }
    rows
}

/// `text` in pieces of at most `width` characters, broken at spaces where possible.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        while current.chars().count() > width {
            let split: String = current.chars().take(width).collect();
            current = current.chars().skip(width).collect();
            out.push(split);
        }
    }
    out.push(current);
    out
}

/// `text` as a PDF string in WinAnsiEncoding: Latin-1 characters as themselves, others as `?`, delimiters escaped.
fn pdf_string(text: &str) -> Vec<u8> {
    let mut out = vec![b'('];
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => out.extend([b'\\', c as u8]),
            ' '..='~' => out.push(c as u8),
            '\u{a0}'..='\u{ff}' => out.push(u8::try_from(u32::from(c)).unwrap_or(b'?')),
            _ => out.push(b'?'),
        }
    }
    out.push(b')');
    out
}

/// Helvetica's advance widths (1/1000 em) for ASCII, enough to right-align figures and labels.
fn text_width(text: &str, size: f32, bold: bool) -> f32 {
    let units: u32 = text
        .chars()
        .map(|c| match c {
            '0'..='9' => 556,
            '.' | ',' | ' ' => 278,
            '-' => 333,
            'A'..='Z' if bold => 722,
            'A'..='Z' => 667,
            _ if bold => 611,
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

/// The PDF of `view`, billed to `customer`.
pub fn render(view: &InvoiceView, customer: &str) -> Vec<u8> {
    let rows = rows(view, customer);
    let pages: Vec<&[Row]> = rows.chunks(ROWS_PER_PAGE).collect();
    let page_count = pages.len();
    // Objects: 1 catalog, 2 page tree, 3 and 4 fonts, then a page and its content stream per page.
    let mut objects: Vec<Vec<u8>> = Vec::new();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = (0..page_count).map(|i| format!("{} 0 R", 5 + 2 * i)).collect();
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {page_count} >>", kids.join(" ")).into_bytes());
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec());
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>".to_vec());
    for (i, page) in pages.iter().enumerate() {
        let mut content = Vec::new();
        let mut y = HEIGHT - MARGIN;
        for row in page.iter() {
            let size = 10.0;
            for (x, right, text) in &row.cells {
                let x = if *right { x - text_width(text, size, row.bold) } else { *x };
                let font = if row.bold { "F2" } else { "F1" };
                content.extend(format!("BT /{font} {size} Tf {x:.1} {y:.1} Td ").into_bytes());
                content.extend(pdf_string(text));
                content.extend(b" Tj ET\n");
            }
            y -= ROW;
        }
        let footer = format!("Page {} of {page_count}", i + 1);
        content.extend(format!("BT /F1 8 Tf {MARGIN:.1} {:.1} Td ", MARGIN / 2.0).into_bytes());
        content.extend(pdf_string(&footer));
        content.extend(b" Tj ET\n");
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                6 + 2 * i
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend(content);
        stream.extend(b"\nendstream");
        objects.push(stream);
    }
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n", i + 1).into_bytes());
        pdf.extend(object);
        pdf.extend(b"\nendobj\n");
    }
    let xref = pdf.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let _ = write!(table, "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1);
    pdf.extend(table.into_bytes());
    pdf
}

#[cfg(test)]
mod tests {
    use billing_domain::{InvoiceKind, InvoiceStatus, LineKind};
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    use super::*;
    use crate::db::models::{InvoiceLineRow, InvoiceRow};

    fn view(lines: usize) -> InvoiceView {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single();
        let id = billing_domain::InvoiceId::new();
        let line = |i: usize| InvoiceLineRow {
            invoice_id: id,
            position: i32::try_from(i).unwrap_or(0),
            kind: LineKind::Usage,
            description: format!("api_calls (tier {i}): 1000 × 0.0005, a long description that has to wrap somewhere"),
            quantity: 1000,
            unit_amount: Decimal::new(5, 4),
            amount: Decimal::new(50, 2),
            period_start: at,
            period_end: at,
            feature: Some("api_calls".into()),
            tier: None,
        };
        let total = Decimal::new(50, 2) * Decimal::from(lines);
        InvoiceView {
            invoice: InvoiceRow {
                id,
                user_id: billing_domain::UserId::new(),
                subscription_id: None,
                number: Some("INV-202611-0042".into()),
                status: InvoiceStatus::Paid,
                kind: InvoiceKind::Renewal,
                currency: Currency::from_code("USD").unwrap_or_else(|| unreachable!()),
                subtotal: total,
                total,
                amount_due: Decimal::ZERO,
                amount_paid: total,
                period_start: at,
                period_end: at,
                finalized_at: at,
                due_at: at,
                paid_at: at,
                voided_at: None,
                created_at: at.unwrap_or_default(),
                updated_at: at.unwrap_or_default(),
                paid_by_transaction_id: None,
                attempt_count: 1,
                next_attempt_at: None,
                last_decline_code: None,
            },
            lines: (0..lines).map(line).collect(),
            credit_notes: Vec::new(),
        }
    }

    /// Checks the structure a reader relies on: the header, every cross-reference offset pointing at its object,
    /// and `startxref` pointing at the table. Returns the page count.
    fn check(pdf: &[u8]) -> usize {
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        let text = String::from_utf8_lossy(pdf);
        let start: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no startxref"));
        assert!(pdf[start..].starts_with(b"xref\n"), "startxref points at the table");
        let table = String::from_utf8_lossy(&pdf[start..]);
        let offsets: Vec<usize> = table
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .filter_map(|l| l.get(..10).and_then(|n| n.parse().ok()))
            .collect();
        for (i, offset) in offsets.iter().enumerate() {
            let header = format!("{} 0 obj\n", i + 1);
            assert!(pdf[*offset..].starts_with(header.as_bytes()), "object {} is where the table says", i + 1);
        }
        text.matches("/Type /Page /Parent").count()
    }

    #[test]
    fn an_invoice_renders_as_a_well_formed_pdf_with_its_lines_and_totals() {
        let pdf = render(&view(2), "ada@example.com");
        assert_eq!(check(&pdf), 1);
        let text = String::from_utf8_lossy(&pdf);
        for expected in
            ["(Invoice INV-202611-0042)", "(Bill to: ada@example.com)", "(0.0005)", "(1.00 USD)", "(Amount due)"]
        {
            assert!(text.contains(expected), "{expected} in the page");
        }
        // × is in WinAnsiEncoding (0xD7); a character outside it is replaced, never dropped silently.
        assert!(pdf.windows(3).any(|w| w == b" \xd7 "));
    }

    #[test]
    fn many_lines_flow_onto_more_pages_and_text_is_escaped() {
        let mut many = view(60);
        many.lines[0].description = "a (parenthesised) back\\slash and ✓".into();
        let pdf = render(&many, "ada@example.com");
        assert!(check(&pdf) >= 3, "60 wrapped lines take three pages");
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("(a \\(parenthesised\\) back\\\\slash and ? \\(2026-11-01 to"), "escaped: {text}");
        assert!(text.contains("(Page 3 of "));
    }
}
