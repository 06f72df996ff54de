//! Statements: `keyword args...` on one line, optionally followed by a
//! `{ ... }` block of further statements.

use std::iter::Peekable;

use super::diag::Diag;
use super::lexer::{Loc, Tok, Token};

/// Blocks nested deeper than this are refused. keepalived's deepest
/// grammar is four levels (`virtual_server` > `real_server` > checker >
/// its options); the limit keeps the recursive parser (and the recursive
/// drop of the tree) far from the stack's end on hostile input.
pub const MAX_DEPTH: usize = 16;

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// The keyword (or, inside address lists, the first word).
    pub key: String,
    /// Where the keyword is.
    pub loc: Loc,
    /// The rest of the line.
    pub args: Vec<(String, Loc)>,
    /// The block that follows, if any.
    pub block: Option<Vec<Stmt>>,
}

/// Parse a token stream into statements. The tokens are consumed (moved
/// into the statements, not copied) as they come.
pub fn parse(tokens: impl IntoIterator<Item = Token>) -> Result<Vec<Stmt>, Diag> {
    parse_with(tokens, Some)
}

/// As [`parse`], handing each top-level statement to `keep` as soon as it
/// is complete: what `keep` returns is kept, the rest dropped at once (so
/// that ignored blocks are never all held at the same time).
pub fn parse_with(
    tokens: impl IntoIterator<Item = Token>,
    mut keep: impl FnMut(Stmt) -> Option<Stmt>,
) -> Result<Vec<Stmt>, Diag> {
    let mut it = tokens.into_iter().peekable();
    block(&mut it, None, 0, &mut keep)
}

fn block<I: Iterator<Item = Token>>(
    it: &mut Peekable<I>,
    opened_at: Option<&Loc>,
    depth: usize,
    keep: &mut dyn FnMut(Stmt) -> Option<Stmt>,
) -> Result<Vec<Stmt>, Diag> {
    let mut out = Vec::new();
    while let Some(t) = it.next() {
        match t.tok {
            Tok::Newline => {}
            Tok::Close => {
                if opened_at.is_none() {
                    return Err(Diag::error(
                        &t.loc,
                        "'}' without a matching '{'",
                        "remove it, or open the block it closes",
                    ));
                }
                return Ok(out);
            }
            Tok::Open => {
                return Err(Diag::error(
                    &t.loc,
                    "'{' without a keyword before it",
                    "a block follows a keyword, as in `virtual_ipaddress {`",
                ));
            }
            Tok::Word(w) => {
                let mut s = Stmt { key: w, loc: t.loc, args: Vec::new(), block: None };
                while let Some(Token { tok: Tok::Word(a), loc }) =
                    it.next_if(|n| matches!(n.tok, Tok::Word(_)))
                {
                    s.args.push((a, loc));
                }
                // A block may open on this line or the next one; the
                // newlines skipped here separate nothing else.
                while it.next_if(|n| n.tok == Tok::Newline).is_some() {}
                if let Some(open) = it.next_if(|n| n.tok == Tok::Open) {
                    if depth + 1 > MAX_DEPTH {
                        return Err(Diag::error(
                            &open.loc,
                            format!("blocks nested more than {MAX_DEPTH} deep"),
                            "keepalived.conf nests a few levels at most: a '}' is probably missing",
                        ));
                    }
                    s.block = Some(block(it, Some(&s.loc), depth + 1, keep)?);
                }
                if depth > 0 {
                    out.push(s);
                } else if let Some(s) = keep(s) {
                    out.push(s);
                }
            }
        }
    }
    match opened_at {
        Some(loc) => Err(Diag::error(loc, "this block is never closed", "add the missing '}'")),
        None => Ok(out),
    }
}
