//! A `--help` text cut into blocks: a usage line, paragraphs, and titled
//! lists of items. dynport's help texts follow one layout (titles at the
//! margin ending in `:`, items indented by two spaces, their columns parted
//! by two spaces or more, explanations indented further), so the man page
//! and the completions can be read out of them instead of written twice.
#![forbid(unsafe_code)]

/// One part of a help text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// `Usage: dynport lease [OPTIONS]`: what follows `Usage: `.
    Usage(String),
    /// Lines at the margin, joined by spaces.
    Paragraph(String),
    /// `Title:` (maybe followed by column headings) and the items under it.
    List {
        title: String,
        headings: Vec<String>,
        items: Vec<Item>,
    },
}

/// One entry of a list: `--host ADDR   HOST   127.0.0.1` and its explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// What the item names: `--host ADDR`, `dynport lease`, `0`, `PORT`.
    pub term: String,
    /// With headings, the columns after the term, one per heading.
    pub cells: Vec<String>,
    /// The explanation: the rest of the item's line, then its indented lines.
    pub text: String,
}

/// Cuts `help` into blocks.
///
/// # Panics
/// On an indented line that belongs to no list: the help texts are
/// dynport's own constants, and the tests read every one of them.
pub fn blocks(help: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    // Whether the last block goes on with the next line; a blank line ends it.
    let mut open = false;
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        let last = blocks.last_mut().filter(|_| open);
        if text.is_empty() {
            open = false;
        } else if indent == 0 {
            open = margin_line(&mut blocks, open, text);
        } else if let Some(Block::List {
            headings, items, ..
        }) = last
        {
            indented_line(items, headings.len(), indent, text);
        } else {
            panic!("help text: the indented line {line:?} belongs to no list");
        }
    }
    blocks
}

/// A line at the margin: a usage line, a list's title, or paragraph text.
/// Returns whether the block it lands in takes more lines.
fn margin_line(blocks: &mut Vec<Block>, open: bool, text: &str) -> bool {
    if let Some(usage) = text.strip_prefix("Usage: ") {
        blocks.push(Block::Usage(usage.trim().to_string()));
        return false;
    }
    let in_paragraph = open && matches!(blocks.last(), Some(Block::Paragraph(_)));
    let mut cells = columns(text);
    // A title starts a block: inside a paragraph, a line ending in `:` is text.
    if cells[0].ends_with(':') && !in_paragraph {
        let title = cells.remove(0);
        let title = title.trim_end_matches(':').to_string();
        let (headings, items) = (cells, Vec::new());
        blocks.push(Block::List {
            title,
            headings,
            items,
        });
        return true;
    }
    match blocks.last_mut() {
        Some(Block::Paragraph(paragraph)) if in_paragraph => join(paragraph, text),
        _ => blocks.push(Block::Paragraph(text.to_string())),
    }
    true
}

/// An item's first line (indented by two) or a further line of its text.
fn indented_line(items: &mut Vec<Item>, headings: usize, indent: usize, text: &str) {
    match items.last_mut() {
        Some(item) if indent > 2 => join(&mut item.text, text),
        _ => items.push(item(text, headings)),
    }
}

fn item(line: &str, headings: usize) -> Item {
    let mut cells = columns(line);
    let term = cells.remove(0);
    if headings > 0 {
        let text = String::new();
        return Item { term, cells, text };
    }
    let text = cells.join(" ");
    let cells = Vec::new();
    Item { term, cells, text }
}

/// The columns of a line: text parted by two spaces or more.
fn columns(line: &str) -> Vec<String> {
    let cells = line.split("  ").map(str::trim).filter(|c| !c.is_empty());
    cells.map(str::to_string).collect()
}

fn join(text: &mut String, more: &str) {
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(more);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_items_columns_and_paragraphs() {
        let help = "\
Usage: dynport x [OPTIONS]

First line
second line.

Flags:      Variable  Default
  --a N     A_VAR     1
      Explained
      here.
  --b       B_VAR     off
Options:
  --c P     short text
            and more [C_VAR]
";
        let item = |term: &str, cells: &[&str], text: &str| Item {
            term: term.to_string(),
            cells: cells.iter().map(|c| c.to_string()).collect(),
            text: text.to_string(),
        };
        let list = |title: &str, headings: &[&str], items| Block::List {
            title: title.to_string(),
            headings: headings.iter().map(|h| h.to_string()).collect(),
            items,
        };
        let expected = vec![
            Block::Usage("dynport x [OPTIONS]".to_string()),
            Block::Paragraph("First line second line.".to_string()),
            list(
                "Flags",
                &["Variable", "Default"],
                vec![
                    item("--a N", &["A_VAR", "1"], "Explained here."),
                    item("--b", &["B_VAR", "off"], ""),
                ],
            ),
            list(
                "Options",
                &[],
                vec![item("--c P", &[], "short text and more [C_VAR]")],
            ),
        ];
        assert_eq!(blocks(help), expected);
    }

    #[test]
    fn a_margin_line_ending_otherwise_than_in_a_colon_is_text() {
        let help = "Exit status: 0 done,\n2 usage error.\n";
        let expected = vec![Block::Paragraph(
            "Exit status: 0 done, 2 usage error.".to_string(),
        )];
        assert_eq!(blocks(help), expected);
    }

    #[test]
    fn a_line_ending_in_a_colon_inside_a_paragraph_is_text() {
        let help = "It is yours.\nKeep CMD in the foreground:\na CMD that daemonizes ends it.\n";
        let expected = vec![Block::Paragraph(
            "It is yours. Keep CMD in the foreground: a CMD that daemonizes ends it.".to_string(),
        )];
        assert_eq!(blocks(help), expected);
    }

    #[test]
    #[should_panic(expected = "belongs to no list")]
    fn an_indented_line_outside_a_list_is_a_mistake_in_the_help() {
        blocks("Some text.\n\n  --stray\n");
    }
}
