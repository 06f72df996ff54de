//! Statements: `keyword args...` on one line, optionally followed by a
//! `{ ... }` block of further statements.

use super::diag::Diag;
use super::lexer::{Loc, Tok, Token};

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

/// Parse a token stream into statements.
pub fn parse(tokens: &[Token]) -> Result<Vec<Stmt>, Diag> {
    let mut i = 0;
    let out = block(tokens, &mut i, None)?;
    Ok(out)
}

fn block(tokens: &[Token], i: &mut usize, opened_at: Option<&Loc>) -> Result<Vec<Stmt>, Diag> {
    let mut out = Vec::new();
    while let Some(t) = tokens.get(*i) {
        match &t.tok {
            Tok::Newline => *i += 1,
            Tok::Close => {
                if opened_at.is_none() {
                    return Err(Diag::error(
                        &t.loc,
                        "'}' without a matching '{'",
                        "remove it, or open the block it closes",
                    ));
                }
                *i += 1;
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
                let mut s = Stmt { key: w.clone(), loc: t.loc.clone(), args: Vec::new(), block: None };
                *i += 1;
                while let Some(Token { tok: Tok::Word(a), loc }) = tokens.get(*i) {
                    s.args.push((a.clone(), loc.clone()));
                    *i += 1;
                }
                // A block may open on this line or the next one.
                let mut j = *i;
                while matches!(tokens.get(j).map(|t| &t.tok), Some(Tok::Newline)) {
                    j += 1;
                }
                if let Some(Token { tok: Tok::Open, .. }) = tokens.get(j) {
                    *i = j + 1;
                    s.block = Some(block(tokens, i, Some(&s.loc))?);
                }
                out.push(s);
            }
        }
    }
    match opened_at {
        Some(loc) => Err(Diag::error(loc, "this block is never closed", "add the missing '}'")),
        None => Ok(out),
    }
}
