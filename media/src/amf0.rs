//! AMF0 values, encoded and decoded (Adobe "Action Message Format -- AMF 0", 2007, §2).
//!
//! Only the types RTMP command messages and `onMetaData` use are produced; the decoder reads
//! every marker a server may send in a command (number, boolean, string, object, null,
//! undefined, reference, ECMA array, strict array, date, long string) and rejects the rest.
//! Malformed input is an [`Amf0Error`], never a panic.

use thiserror::Error;

const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_REFERENCE: u8 = 0x07;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0a;
const MARKER_DATE: u8 = 0x0b;
const MARKER_LONG_STRING: u8 = 0x0c;

/// Nesting deeper than this is rejected (a server has no reason to send it).
const MAX_DEPTH: usize = 16;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// An ECMA array: keyed like an object (used by `onMetaData`).
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the UNIX epoch (the time zone field is ignored).
    Date(f64),
    /// A reference to an earlier object (kept as its index).
    Reference(u16),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::String(s.to_string())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// Why AMF0 bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Amf0Error {
    #[error("AMF0: truncated {0}")]
    Truncated(&'static str),
    #[error("AMF0: unknown or unsupported type marker 0x{0:02x}")]
    UnknownMarker(u8),
    #[error("AMF0: string is not UTF-8")]
    NotUtf8,
    #[error("AMF0: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Number(n) => {
            out.push(MARKER_NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => {
            out.push(MARKER_BOOLEAN);
            out.push(u8::from(*b));
        }
        Value::String(s) => {
            if s.len() <= usize::from(u16::MAX) {
                out.push(MARKER_STRING);
                put_utf8(s, out);
            } else {
                out.push(MARKER_LONG_STRING);
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&s.as_bytes()[..len as usize]);
            }
        }
        Value::Object(props) => {
            out.push(MARKER_OBJECT);
            put_props(props, out);
        }
        Value::Null => out.push(MARKER_NULL),
        Value::Undefined => out.push(MARKER_UNDEFINED),
        Value::EcmaArray(props) => {
            out.push(MARKER_ECMA_ARRAY);
            let n = u32::try_from(props.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&n.to_be_bytes());
            put_props(props, out);
        }
        Value::StrictArray(items) => {
            out.push(MARKER_STRICT_ARRAY);
            let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&n.to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Value::Date(ms) => {
            out.push(MARKER_DATE);
            out.extend_from_slice(&ms.to_be_bytes());
            out.extend_from_slice(&0i16.to_be_bytes());
        }
        Value::Reference(i) => {
            out.push(MARKER_REFERENCE);
            out.extend_from_slice(&i.to_be_bytes());
        }
    }
}

/// Encodes several values one after the other (a command message body).
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(v, &mut out);
    }
    out
}

/// Decodes every value in `data`.
pub fn decode_all(mut data: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut values = Vec::new();
    while !data.is_empty() {
        values.push(decode(&mut data)?);
    }
    Ok(values)
}

/// Decodes one value from the front of `data` and advances it.
pub fn decode(data: &mut &[u8]) -> Result<Value, Amf0Error> {
    decode_depth(data, 0)
}

fn put_utf8(s: &str, out: &mut Vec<u8>) {
    let len = s.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_props(props: &[(String, Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        put_utf8(k, out);
        encode(v, out);
    }
    out.extend_from_slice(&[0, 0, MARKER_OBJECT_END]);
}

fn take<'a>(data: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], Amf0Error> {
    if data.len() < n {
        return Err(Amf0Error::Truncated(what));
    }
    let (head, tail) = data.split_at(n);
    *data = tail;
    Ok(head)
}

fn take_u16(data: &mut &[u8], what: &'static str) -> Result<u16, Amf0Error> {
    let b = take(data, 2, what)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn take_u32(data: &mut &[u8], what: &'static str) -> Result<u32, Amf0Error> {
    let b = take(data, 4, what)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn take_f64(data: &mut &[u8], what: &'static str) -> Result<f64, Amf0Error> {
    let b = take(data, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(f64::from_be_bytes(a))
}

fn take_utf8(data: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    let b = take(data, len, "string")?;
    String::from_utf8(b.to_vec()).map_err(|_| Amf0Error::NotUtf8)
}

fn decode_props(data: &mut &[u8], depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        let len = usize::from(take_u16(data, "property name")?);
        if len == 0 {
            if data.first() == Some(&MARKER_OBJECT_END) {
                *data = &data[1..];
                return Ok(props);
            }
            if data.is_empty() {
                return Err(Amf0Error::Truncated("object end"));
            }
        }
        let key = take_utf8(data, len)?;
        let value = decode_depth(data, depth + 1)?;
        props.push((key, value));
    }
}

fn decode_depth(data: &mut &[u8], depth: usize) -> Result<Value, Amf0Error> {
    if depth > MAX_DEPTH {
        return Err(Amf0Error::TooDeep);
    }
    let marker = take(data, 1, "type marker")?[0];
    Ok(match marker {
        MARKER_NUMBER => Value::Number(take_f64(data, "number")?),
        MARKER_BOOLEAN => Value::Boolean(take(data, 1, "boolean")?[0] != 0),
        MARKER_STRING => {
            let len = usize::from(take_u16(data, "string length")?);
            Value::String(take_utf8(data, len)?)
        }
        MARKER_LONG_STRING => {
            let len = take_u32(data, "long string length")? as usize;
            Value::String(take_utf8(data, len)?)
        }
        MARKER_OBJECT => Value::Object(decode_props(data, depth)?),
        MARKER_NULL => Value::Null,
        MARKER_UNDEFINED => Value::Undefined,
        MARKER_REFERENCE => Value::Reference(take_u16(data, "reference")?),
        MARKER_ECMA_ARRAY => {
            take_u32(data, "ECMA array count")?;
            Value::EcmaArray(decode_props(data, depth)?)
        }
        MARKER_STRICT_ARRAY => {
            let n = take_u32(data, "strict array count")? as usize;
            let mut items = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                items.push(decode_depth(data, depth + 1)?);
            }
            Value::StrictArray(items)
        }
        MARKER_DATE => {
            let ms = take_f64(data, "date")?;
            take(data, 2, "date time zone")?;
            Value::Date(ms)
        }
        other => return Err(Amf0Error::UnknownMarker(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_every_type() {
        let values = vec![
            Value::str("connect"),
            Value::Number(1.0),
            Value::Object(vec![
                ("app".into(), Value::str("live")),
                ("fpad".into(), Value::Boolean(false)),
                (
                    "nested".into(),
                    Value::EcmaArray(vec![("w".into(), Value::Number(426.0))]),
                ),
            ]),
            Value::Null,
            Value::Undefined,
            Value::StrictArray(vec![Value::Number(2.5), Value::str("x")]),
            Value::Date(1.5e12),
            Value::Reference(3),
        ];
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).unwrap(), values);
    }

    #[test]
    fn known_bytes_of_a_string_and_number() {
        let bytes = encode_all(&[Value::str("_result"), Value::Number(1.0)]);
        assert_eq!(
            bytes,
            [
                0x02, 0, 7, b'_', b'r', b'e', b's', b'u', b'l', b't', 0x00, 0x3f, 0xf0, 0, 0, 0, 0,
                0, 0
            ]
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert_eq!(
            decode_all(&[0x00, 1, 2]),
            Err(Amf0Error::Truncated("number"))
        );
        assert_eq!(decode_all(&[0x42]), Err(Amf0Error::UnknownMarker(0x42)));
        assert_eq!(
            decode_all(&[0x02, 0, 2, 0xff, 0xfe]),
            Err(Amf0Error::NotUtf8)
        );
        assert!(decode_all(&[0x03, 0, 1, b'a']).is_err());
        assert!(decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([0x03, 0, 1, b'a'], 40)
            .flatten()
            .collect();
        assert!(decode_all(&deep).is_err());
        // Every prefix of a valid message fails cleanly.
        let bytes = encode_all(&[
            Value::str("onStatus"),
            Value::Number(0.0),
            Value::Null,
            Value::Object(vec![("code".into(), Value::str("NetStream.Publish.Start"))]),
        ]);
        for n in 0..bytes.len() {
            let _ = decode_all(&bytes[..n]);
        }
    }

    #[test]
    fn get_reads_object_properties() {
        let v = Value::Object(vec![("code".into(), Value::str("NetStream.Publish.Start"))]);
        assert_eq!(
            v.get("code").and_then(Value::as_str),
            Some("NetStream.Publish.Start")
        );
        assert!(v.get("level").is_none());
    }
}
