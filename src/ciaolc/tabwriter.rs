//! The subset of Go's `text/tabwriter` that the original `ciaolc` uses:
//! `tabwriter.NewWriter(w, 0, 8, 0, '\t', 0)` (minimum cell width 0, tab
//! width 8, padding 0, padding character TAB, no flags), flushed once.
//!
//! Exact bytes matter because scripts parse `ciaolc istats` output, so this is
//! a faithful transcription of Go's column-block algorithm rather than a
//! "pretty table" printer. Consequence worth knowing (C9 in
//! docs/compatibility.md): a cell whose width is already a multiple of 8 gets
//! no TAB at all and runs into the next column.

/// Width of a TAB stop in the output (Go's `tabwidth` argument).
const TAB_WIDTH: usize = 8;

/// Aligns `text` (lines terminated by `\n`, cells terminated by `\t`) the way
/// Go's tabwriter configured as above does, and returns the result.
///
/// Each line's last piece (the text after its last TAB) takes no part in the
/// alignment. Widths are counted in Unicode code points, as Go counts runes.
pub(crate) fn align(text: &str) -> String {
    // Go keeps text after the final newline as an unterminated last line.
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let ends_with_newline = text.ends_with('\n');
    if ends_with_newline {
        lines.pop();
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format(&lines, &mut widths, 0, lines.len(), &mut out);
    if !ends_with_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn cell_width(cell: &str) -> usize {
    cell.chars().count()
}

/// Go's `Writer.format`: find each block of consecutive lines that have a
/// cell in column `widths.len()`, compute that column's width over the block,
/// and recurse to the columns to its right.
fn format(
    lines: &[Vec<&str>],
    widths: &mut Vec<usize>,
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut line0 = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // Print the lines before the block, then measure the block.
        write_lines(lines, widths, line0, this, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]));
            this += 1;
        }
        widths.push(width);
        format(lines, widths, line0, this, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, widths, line0, line1, out);
}

/// Go's `Writer.writeLines` for left alignment with TAB padding.
fn write_lines(
    lines: &[Vec<&str>],
    widths: &[usize],
    line0: usize,
    line1: usize,
    out: &mut String,
) {
    for line in &lines[line0..line1] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let w = cell_width(cell);
                let cellw = widths[j].div_ceil(TAB_WIDTH) * TAB_WIDTH;
                let tabs = (cellw - w).div_ceil(TAB_WIDTH);
                for _ in 0..tabs {
                    out.push('\t');
                }
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn pads_to_tab_stops() {
        assert_eq!(
            align("a\tb\nlonger-than-8\tc\n"),
            "a\t\tb\nlonger-than-8\tc\n"
        );
    }

    #[test]
    fn cell_of_exact_multiple_gets_no_tab() {
        assert_eq!(align("12345678\tx\n"), "12345678x\n");
    }

    #[test]
    fn lines_without_cells_break_blocks() {
        // The middle line has no cell, so the two outer lines are aligned
        // separately.
        assert_eq!(
            align("a\tb\nplain\nlonger-cell\tc\n"),
            "a\tb\nplain\nlonger-cell\tc\n"
        );
    }

    #[test]
    fn empty_input() {
        assert_eq!(align(""), "");
    }

    #[test]
    fn counts_code_points() {
        assert_eq!(align("ééééééé\tx\nab\ty\n"), "ééééééé\tx\nab\ty\n");
    }
}
