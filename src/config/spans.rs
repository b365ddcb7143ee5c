//! Positions of keys and values in the parsed document, so that a semantic error points at the
//! offending value (or, when the key is absent, at the table that should hold it).

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into the document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path like `rendition[1].width`, for messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    pub(crate) fn key(k: &str) -> Self {
        KeyPath(vec![Seg::Key(k.to_string())])
    }

    pub(crate) fn index(k: &str, i: usize) -> Self {
        KeyPath(vec![Seg::Key(k.to_string()), Seg::Index(i)])
    }

    pub(crate) fn join(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    pub(crate) fn at(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub(crate) fn extend(&self, rest: &[Seg]) -> Self {
        let mut p = self.clone();
        p.0.extend_from_slice(rest);
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Span lookups into the parsed document.
pub(crate) struct Spans<'a, 'i> {
    root: &'a Spanned<DeTable<'i>>,
}

impl<'a, 'i> Spans<'a, 'i> {
    pub(crate) fn new(root: &'a Spanned<DeTable<'i>>) -> Self {
        Spans { root }
    }

    /// The key and value at `path`; the key is `None` for array elements.
    fn entry(&self, path: &KeyPath) -> Option<(Option<Range<usize>>, &'a Spanned<DeValue<'i>>)> {
        let mut segs = path.0.iter();
        let Some(Seg::Key(first)) = segs.next() else {
            return None;
        };
        let (k, mut v) = self.root.get_ref().get_key_value(first.as_str())?;
        let mut key = Some(k.span());
        for seg in segs {
            match (seg, v.get_ref()) {
                (Seg::Key(name), DeValue::Table(t)) => {
                    let (k, next) = t.get_key_value(name.as_str())?;
                    key = Some(k.span());
                    v = next;
                }
                (Seg::Index(i), DeValue::Array(a)) => {
                    v = a.get(*i)?;
                    key = None;
                }
                _ => return None,
            }
        }
        Some((key, v))
    }

    /// Whether the document sets `path`.
    pub(crate) fn has(&self, path: &KeyPath) -> bool {
        self.entry(path).is_some()
    }

    /// Span of the value at `path`, or of the nearest enclosing item that exists (so a missing
    /// key points at its table), or `None` for an empty document.
    pub(crate) fn value(&self, path: &KeyPath) -> Option<Range<usize>> {
        let mut p = path.clone();
        loop {
            if let Some((_, v)) = self.entry(&p) {
                return Some(v.span());
            }
            p.0.pop()?;
            if p.0.is_empty() {
                return None;
            }
        }
    }

    /// Span of the key at `path` (the value's span for array elements), falling back like
    /// [`Spans::value`].
    pub(crate) fn key(&self, path: &KeyPath) -> Option<Range<usize>> {
        match self.entry(path) {
            Some((Some(k), _)) => Some(k),
            Some((None, v)) => Some(v.span()),
            None => self.value(path),
        }
    }
}

/// Whether `inner` lies within `outer`.
pub(crate) fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The path (relative to `value`) of the innermost key or element whose key or value contains
/// `span`; `None` when nothing below `value` does.
pub(crate) fn locate(value: &DeValue<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
    let descend = |child: &Spanned<DeValue<'_>>, seg: Seg| -> Option<Vec<Seg>> {
        if !contains(&child.span(), span) {
            return None;
        }
        let mut path = vec![seg];
        if child.span() != *span
            && let Some(rest) = locate(child.get_ref(), span)
        {
            path.extend(rest);
        }
        Some(path)
    };
    match value {
        DeValue::Table(t) => t.iter().find_map(|(k, v)| {
            if contains(&k.span(), span) {
                Some(vec![Seg::Key(k.get_ref().to_string())])
            } else {
                descend(v, Seg::Key(k.get_ref().to_string()))
            }
        }),
        DeValue::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| descend(v, Seg::Index(i))),
        _ => None,
    }
}

/// Removes the item at `path` (relative to `value`); returns whether something was removed.
pub(crate) fn remove(value: &mut DeValue<'_>, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = value;
    for seg in parents {
        v = match (seg, v) {
            (Seg::Key(k), DeValue::Table(t)) => match t.get_mut(k.as_str()) {
                Some(next) => next.get_mut(),
                None => return false,
            },
            (Seg::Index(i), DeValue::Array(a)) => match a.get_mut(*i) {
                Some(next) => next.get_mut(),
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (Seg::Key(k), DeValue::Table(t)) => t.remove(k.as_str()).is_some(),
        (Seg::Index(i), DeValue::Array(a)) => {
            if *i >= a.len() {
                return false;
            }
            let old = std::mem::replace(a, toml::de::DeArray::new());
            *a = old
                .into_iter()
                .enumerate()
                .filter_map(|(n, item)| (n != *i).then_some(item))
                .collect();
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[input]\nwidth = 1280\n\n[[rendition]]\nname = \"a\"\n\n[origin]\nallow = [\"x\", \"y\"]\n";

    #[test]
    fn looks_up_values_keys_and_fallbacks() {
        let doc = DeTable::parse(DOC).unwrap();
        let spans = Spans::new(&doc);
        let width = KeyPath::key("input").join("width");
        assert_eq!(&DOC[spans.value(&width).unwrap()], "1280");
        assert_eq!(&DOC[spans.key(&width).unwrap()], "width");
        let name = KeyPath::index("rendition", 0).join("name");
        assert_eq!(&DOC[spans.value(&name).unwrap()], "\"a\"");
        let y = KeyPath::key("origin").join("allow").at(1);
        assert_eq!(&DOC[spans.value(&y).unwrap()], "\"y\"");
        assert!(spans.has(&width));
        assert!(!spans.has(&KeyPath::key("input").join("height")));
        // A missing key falls back to its table.
        assert!(spans.value(&KeyPath::key("input").join("height")).is_some());
        assert!(
            spans
                .value(&KeyPath::key("control").join("listen"))
                .is_none()
        );
        assert_eq!(width.to_string(), "input.width");
        assert_eq!(y.to_string(), "origin.allow[1]");
    }

    #[test]
    fn locate_and_remove() {
        let doc = DeTable::parse(DOC).unwrap();
        let origin = doc.get_ref().get("origin").unwrap();
        let start = DOC.find("\"y\"").unwrap();
        let path = locate(origin.get_ref(), &(start..start + 3)).unwrap();
        assert_eq!(path, vec![Seg::Key("allow".into()), Seg::Index(1)]);
        let mut v = origin.get_ref().clone();
        assert!(remove(&mut v, &path));
        assert_eq!(
            v.get("allow").unwrap().get_ref().as_array().unwrap().len(),
            1
        );
        assert!(remove(&mut v, &[Seg::Key("allow".into())]));
        assert!(!remove(&mut v, &[Seg::Key("allow".into())]));
    }
}
