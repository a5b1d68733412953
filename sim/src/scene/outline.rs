//! A scene file's text read for its shape alone: its brackets, keys and list items, not what they mean. Bevy's
//! deserializer reports a line and column only; the outline names the entity, component and field there. It
//! also finds a field written twice, which the deserializer takes silently (the last value winning).

/// What a token of RON text is, as far as the outline cares.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// `(`, `[` or `{`.
    Open(char),
    /// `)`, `]` or `}`.
    Close,
    /// A word or string followed by `:`; `quoted` for a string (a component's type path).
    Key {
        name: String,
        quoted: bool,
    },
    /// A string value.
    Str(String),
    Comma,
    /// Anything else: numbers, identifiers, `::`.
    Other,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    line: usize,
    column: usize,
}

/// One step of the path to a position: a key of a struct or map, or an item of a list.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Item(usize),
}

/// A bracket open at some point of the text.
struct Frame {
    bracket: char,
    line: usize,
    column: usize,
    /// The last key read in it: what a value or bracket that follows belongs to.
    key: Option<String>,
    /// Its identifier keys so far, where each was written.
    keys: Vec<(String, usize, usize)>,
    /// Commas read in it: the index of a list's current item.
    commas: usize,
}

impl Frame {
    fn step(&self) -> Option<Step> {
        match self.bracket {
            '[' => Some(Step::Item(self.commas)),
            _ => self.key.clone().map(Step::Key),
        }
    }
}

/// A field written twice in one struct.
#[derive(Debug, PartialEq)]
pub(super) struct Repeated {
    /// Where the second one is.
    pub line: usize,
    pub column: usize,
    /// Where the first one is.
    pub first: (usize, usize),
    /// The entity and field, as [`Outline::place_at`] words them.
    pub place: String,
}

/// The tokens of a scene file's text.
pub(super) struct Outline {
    tokens: Vec<Token>,
}

impl Outline {
    /// Reads `text`'s tokens; never fails (text it cannot read is skipped a character at a time).
    pub fn read(text: &str) -> Self {
        let mut raw = lex(text);
        // A word or string directly followed by a single `:` is a key.
        let mut tokens = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let (token, colon) = (&raw[i], raw.get(i + 1));
            let key = match (&token.0, colon.map(|c| &c.0)) {
                (Lexeme::Word(w), Some(Lexeme::Colon)) => Some((w.clone(), false)),
                (Lexeme::Str(s), Some(Lexeme::Colon)) => Some((s.clone(), true)),
                _ => None,
            };
            let (line, column) = (token.1, token.2);
            let kind = match key {
                Some((name, quoted)) => {
                    i += 1;
                    Kind::Key { name, quoted }
                }
                None => match std::mem::replace(&mut raw[i].0, Lexeme::Colon) {
                    Lexeme::Open(c) => Kind::Open(c),
                    Lexeme::Close => Kind::Close,
                    Lexeme::Str(s) => Kind::Str(s),
                    Lexeme::Comma => Kind::Comma,
                    Lexeme::Word(_) | Lexeme::Colon | Lexeme::Other => Kind::Other,
                },
            };
            tokens.push(Token { kind, line, column });
            i += 1;
        }
        Self { tokens }
    }

    /// Walks the tokens that start at or before `until`; returns the frames open there, how many tokens it read,
    /// and each entity's name (the first `name: "…"` among its components' fields) up to there.
    fn walk(&self, until: (usize, usize)) -> (Vec<Frame>, usize, Vec<(String, String)>) {
        let mut frames: Vec<Frame> = Vec::new();
        let mut names = Vec::new();
        let mut read = 0;
        for (k, token) in self.tokens.iter().enumerate() {
            if (token.line, token.column) > until {
                break;
            }
            read = k + 1;
            match &token.kind {
                Kind::Open(c) => frames.push(Frame {
                    bracket: *c,
                    line: token.line,
                    column: token.column,
                    key: None,
                    keys: Vec::new(),
                    commas: 0,
                }),
                Kind::Close => {
                    frames.pop();
                }
                Kind::Comma => {
                    if let Some(f) = frames.last_mut() {
                        f.commas += 1;
                    }
                }
                Kind::Key { name, quoted } => {
                    if let Some(f) = frames.last_mut() {
                        f.key = Some(name.clone());
                        if !quoted {
                            f.keys.push((name.clone(), token.line, token.column));
                        }
                    }
                    let path = path(&frames);
                    if name == "name"
                        && path.len() == 5
                        && let Some(Kind::Str(value)) = self.tokens.get(k + 1).map(|t| &t.kind)
                        && let Some(entity) = entity_of(&path)
                        && !names.iter().any(|(id, _)| *id == entity)
                    {
                        names.push((entity, value.clone()));
                    }
                }
                Kind::Str(_) | Kind::Other => {}
            }
        }
        (frames, read, names)
    }

    /// The entity, component and field at `(line, column)`, worded for an error: ``entity 3 ("cart"), field
    /// `Joint.limits.min` ``, ``entity 1, component `TaskSettings` ``, or `scene` outside every entity.
    pub fn place_at(&self, line: usize, column: usize) -> String {
        let (frames, _, _) = self.walk((line, column));
        let (_, _, names) = self.walk((usize::MAX, usize::MAX));
        describe(&path(&frames), &names)
    }

    /// The first field written twice in one struct, if any.
    pub fn repeated_field(&self) -> Option<Repeated> {
        let mut frames: Vec<Frame> = Vec::new();
        for token in &self.tokens {
            match &token.kind {
                Kind::Open(c) => frames.push(Frame {
                    bracket: *c,
                    line: token.line,
                    column: token.column,
                    key: None,
                    keys: Vec::new(),
                    commas: 0,
                }),
                Kind::Close => {
                    frames.pop();
                }
                Kind::Key {
                    name,
                    quoted: false,
                } => {
                    // Entity ids are keys too; the loader names an id used twice itself.
                    if name.chars().all(|c| c.is_ascii_digit()) {
                        continue;
                    }
                    let f = frames.last()?;
                    if let Some(&(_, l, c)) = f.keys.iter().find(|(k, _, _)| k == name) {
                        return Some(Repeated {
                            line: token.line,
                            column: token.column,
                            first: (l, c),
                            place: self.place_at(token.line, token.column),
                        });
                    }
                    let f = frames.last_mut()?;
                    f.keys.push((name.clone(), token.line, token.column));
                    f.key = Some(name.clone());
                }
                _ => {}
            }
        }
        None
    }

    /// Where the text ends with brackets left open: how many, and where the innermost was opened.
    pub fn unclosed(&self) -> Option<(usize, (usize, usize))> {
        let (frames, _, _) = self.walk((usize::MAX, usize::MAX));
        let last = frames.last()?;
        Some((frames.len(), (last.line, last.column)))
    }

    /// Whether `(line, column)` is at or after the last token (the deserializer ran out of text there).
    pub fn at_end(&self, line: usize, column: usize) -> bool {
        self.tokens
            .last()
            .is_none_or(|t| (line, column) >= (t.line, t.column))
    }

    /// Whether the token at `(line, column)` is a string value.
    pub fn string_at(&self, line: usize, column: usize) -> bool {
        let (_, read, _) = self.walk((line, column));
        read > 0
            && matches!(self.tokens[read - 1].kind, Kind::Str(_))
            && (self.tokens[read - 1].line, self.tokens[read - 1].column) == (line, column)
    }
}

/// The steps from the top of the text to the innermost open frame.
fn path(frames: &[Frame]) -> Vec<Step> {
    frames.iter().filter_map(Frame::step).collect()
}

/// The entity id of a path through `entities: { ID: ( components: { "Type": ( fields… ) } ) }`.
fn entity_of(path: &[Step]) -> Option<String> {
    match path {
        [Step::Key(top), Step::Key(id), ..] if top == "entities" => Some(id.clone()),
        _ => None,
    }
}

fn describe(path: &[Step], names: &[(String, String)]) -> String {
    let Some(id) = entity_of(path) else {
        return "scene".to_string();
    };
    let entity = match names.iter().find(|(e, _)| *e == id) {
        Some((_, name)) => format!("entity {id} (\"{name}\")"),
        None => format!("entity {id}"),
    };
    let component = match path.get(2..4) {
        Some([Step::Key(c), Step::Key(type_path)]) if c == "components" => type_path
            .rsplit("::")
            .next()
            .unwrap_or(type_path)
            .to_string(),
        _ => return entity,
    };
    if path.len() == 4 {
        return format!("{entity}, component `{component}`");
    }
    let mut field = component;
    for step in &path[4..] {
        match step {
            Step::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Step::Item(i) => field.push_str(&format!("[{i}]")),
        }
    }
    format!("{entity}, field `{field}`")
}

/// A token before keys are told from values.
#[derive(Debug)]
enum Lexeme {
    Open(char),
    Close,
    Word(String),
    Str(String),
    Colon,
    Comma,
    Other,
}

/// A position in RON text, moved a character at a time.
struct Cursor {
    chars: Vec<char>,
    i: usize,
    line: usize,
    column: usize,
}

impl Cursor {
    fn at(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).copied()
    }

    /// How many characters from here on satisfy `f`.
    fn run(&self, f: impl Fn(char) -> bool) -> usize {
        self.chars[self.i..].iter().take_while(|&&c| f(c)).count()
    }

    /// Moves past `n` characters, keeping the line and column.
    fn advance(&mut self, n: usize) {
        for _ in 0..n {
            let Some(c) = self.at(0) else { return };
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
            self.i += 1;
        }
    }

    /// Reads a string from its opening quote; returns its text (escapes reduced to the escaped character).
    fn string(&mut self) -> String {
        self.advance(1);
        let mut value = String::new();
        while let Some(c) = self.at(0) {
            self.advance(1);
            match c {
                '"' => break,
                '\\' => {
                    value.extend(self.at(0));
                    self.advance(1);
                }
                c => value.push(c),
            }
        }
        value
    }

    /// Reads a raw string (`r"…"`, `r#"…"#`) from its `r`, or returns `None` (and moves nowhere) where the `r` is
    /// not one.
    fn raw_string(&mut self) -> Option<String> {
        let hashes = self.chars[self.i + 1..]
            .iter()
            .take_while(|&&c| c == '#')
            .count();
        if self.at(1 + hashes) != Some('"') {
            return None;
        }
        self.advance(2 + hashes);
        let mut value = String::new();
        while let Some(c) = self.at(0) {
            if c == '"' && (1..=hashes).all(|k| self.at(k) == Some('#')) {
                self.advance(1 + hashes);
                break;
            }
            value.push(c);
            self.advance(1);
        }
        Some(value)
    }

    /// Moves past a comment from its `/`: to the end of the line, or past the matching `*/` (RON's nest).
    fn comment(&mut self) {
        if self.at(1) == Some('/') {
            let n = self.run(|c| c != '\n');
            self.advance(n);
            return;
        }
        let mut depth = 0;
        while self.at(0).is_some() {
            match (self.at(0), self.at(1)) {
                (Some('/'), Some('*')) => {
                    depth += 1;
                    self.advance(2);
                }
                (Some('*'), Some('/')) => {
                    depth -= 1;
                    self.advance(2);
                }
                _ => self.advance(1),
            }
            if depth == 0 {
                break;
            }
        }
    }
}

/// Splits RON text into lexemes with their 1-based line and column (in characters, as RON counts them).
fn lex(text: &str) -> Vec<(Lexeme, usize, usize)> {
    let mut cursor = Cursor {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        column: 1,
    };
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '+' | '-');
    let mut out = Vec::new();
    while let Some(c) = cursor.at(0) {
        let at = (cursor.line, cursor.column);
        let lexeme = match (c, cursor.at(1)) {
            _ if c.is_whitespace() => {
                cursor.advance(1);
                continue;
            }
            ('/', Some('/' | '*')) => {
                cursor.comment();
                continue;
            }
            ('"', _) => Lexeme::Str(cursor.string()),
            ('r', Some('"' | '#')) if let Some(s) = cursor.raw_string() => Lexeme::Str(s),
            ('\'', _) => {
                // A character literal: 'x' or '\x'.
                let n = if cursor.at(1) == Some('\\') { 4 } else { 3 };
                cursor.advance(n);
                Lexeme::Other
            }
            ('(' | '[' | '{', _) => {
                cursor.advance(1);
                Lexeme::Open(c)
            }
            (')' | ']' | '}', _) => {
                cursor.advance(1);
                Lexeme::Close
            }
            (',', _) => {
                cursor.advance(1);
                Lexeme::Comma
            }
            (':', Some(':')) => {
                cursor.advance(2);
                Lexeme::Other
            }
            (':', _) => {
                cursor.advance(1);
                Lexeme::Colon
            }
            _ if word(c) => {
                let n = cursor.run(word);
                let w = cursor.chars[cursor.i..cursor.i + n].iter().collect();
                cursor.advance(n);
                Lexeme::Word(w)
            }
            _ => {
                cursor.advance(1);
                Lexeme::Other
            }
        };
        out.push((lexeme, at.0, at.1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENE: &str = r#"// a comment: with (brackets [ and a colon
(
  resources: {},
  entities: {
    1: (
      components: {
        "qamlab_sim::authoring::TaskSettings": (
          name: "slider", /* a (block) comment */
          episode_length: "100",
        ),
        "qamlab_sim::authoring::ActionSpace": (
          actuators: [
            (name: "push", range: (min: -1.0, max: 1.0)),
            (name: "pull", range: Some((min: -1.0, max: x))),
          ],
        ),
      },
    ),
    3: (
      components: {
        "qamlab_sim::authoring::Body": (name: "cart", kind: "Dynamic"),
      },
    ),
  },
)
"#;

    /// The line and column of the first occurrence of `needle`.
    fn at(needle: &str) -> (usize, usize) {
        let offset = SCENE.find(needle).unwrap();
        let before = &SCENE[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
        (line, column)
    }

    #[test]
    fn a_position_is_named_by_entity_component_and_field() {
        let outline = Outline::read(SCENE);
        let place = |needle| {
            let (l, c) = at(needle);
            outline.place_at(l, c)
        };
        assert_eq!(
            place("\"100\""),
            "entity 1 (\"slider\"), field `TaskSettings.episode_length`"
        );
        assert_eq!(
            place("x)))"),
            "entity 1 (\"slider\"), field `ActionSpace.actuators[1].range.max`"
        );
        assert_eq!(
            place("\"Dynamic\""),
            "entity 3 (\"cart\"), field `Body.kind`"
        );
        assert_eq!(
            place("\"qamlab_sim::authoring::Body\""),
            "entity 3 (\"cart\"), component `Body`"
        );
        assert_eq!(place("resources"), "scene");
        assert!(outline.string_at(at("\"Dynamic\"").0, at("\"Dynamic\"").1));
        assert!(!outline.string_at(at("x)))").0, at("x)))").1));
        assert_eq!(outline.repeated_field(), None);
        assert_eq!(outline.unclosed(), None);
    }

    #[test]
    fn a_field_written_twice_and_a_text_cut_short_are_found() {
        let twice = SCENE.replace(
            "episode_length: \"100\",",
            "episode_length: 100,\n          episode_length: 50,",
        );
        let repeated = Outline::read(&twice).repeated_field().unwrap();
        assert_eq!(
            (repeated.line, repeated.column, repeated.first),
            (10, 11, (9, 11))
        );
        assert_eq!(
            repeated.place,
            "entity 1 (\"slider\"), field `TaskSettings.episode_length`"
        );
        // The same key in two structs, or two list items, is no repeat.
        assert_eq!(Outline::read(SCENE).repeated_field(), None);
        let cut = &SCENE[..SCENE.find("3: (").unwrap()];
        let outline = Outline::read(cut);
        assert_eq!(outline.unclosed(), Some((2, (4, 13))));
        assert!(outline.at_end(18, 10) && !outline.at_end(2, 1));
    }
}
