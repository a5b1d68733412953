//! A scene file's text read for its shape alone: its brackets, keys and list items, not what they mean. RON's
//! deserializer (under Bevy's) reports a line and column only; the outline names the entity, component and field there. It
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
    /// A word that is no key (an identifier, a number) or a character literal's text.
    Word(String),
    Comma,
    /// Anything else: `::`, stray characters.
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
    fn open(bracket: char, token: &Token) -> Self {
        Self {
            bracket,
            line: token.line,
            column: token.column,
            key: None,
            keys: Vec::new(),
            commas: 0,
        }
    }

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

/// The components whose `name` names an entity in errors, most telling first (as the loader's labels).
const NAMING: [&str; 7] = [
    "TaskSettings",
    "Body",
    "Joint",
    "Site",
    "Goal",
    "JointGoal",
    "AxisGoal",
];

/// What a walk over the tokens found up to where it stopped.
struct Walk {
    /// The brackets open there.
    frames: Vec<Frame>,
    /// How many tokens it read.
    read: usize,
    /// Each entity's name by [`NAMING`]: (entity id, rank in `NAMING`, name).
    names: Vec<(String, usize, String)>,
    /// The first field written twice: the token's index, and where the first one was.
    repeated: Option<(usize, (usize, usize))>,
}

/// The tokens of a scene file's text.
pub(super) struct Outline {
    tokens: Vec<Token>,
}

impl Outline {
    /// Reads `text`'s tokens; never fails (text it cannot read is skipped a character at a time).
    pub fn read(text: &str) -> Self {
        let mut raw = lex(text).peekable();
        let mut tokens = Vec::new();
        while let Some((lexeme, line, column)) = raw.next() {
            // A word or string directly followed by a single `:` is a key.
            let keyed = matches!(lexeme, Lexeme::Word(_) | Lexeme::Str(_))
                && raw
                    .next_if(|(next, _, _)| matches!(next, Lexeme::Colon))
                    .is_some();
            let kind = match (lexeme, keyed) {
                (Lexeme::Word(name), true) => Kind::Key {
                    name,
                    quoted: false,
                },
                (Lexeme::Str(name), true) => Kind::Key { name, quoted: true },
                (Lexeme::Str(s), false) => Kind::Str(s),
                (Lexeme::Word(w), false) | (Lexeme::Char(w), _) => Kind::Word(w),
                (Lexeme::Open(c), _) => Kind::Open(c),
                (Lexeme::Close, _) => Kind::Close,
                (Lexeme::Comma, _) => Kind::Comma,
                _ => Kind::Other,
            };
            tokens.push(Token { kind, line, column });
        }
        Self { tokens }
    }

    /// Walks the tokens that start at or before `until`.
    fn walk(&self, until: (usize, usize)) -> Walk {
        let mut walk = Walk {
            frames: Vec::new(),
            read: 0,
            names: Vec::new(),
            repeated: None,
        };
        for (k, token) in self.tokens.iter().enumerate() {
            if (token.line, token.column) > until {
                break;
            }
            walk.read = k + 1;
            let frames = &mut walk.frames;
            match &token.kind {
                Kind::Open(c) => frames.push(Frame::open(*c, token)),
                Kind::Close => {
                    frames.pop();
                }
                Kind::Comma => {
                    if let Some(f) = frames.last_mut() {
                        f.commas += 1;
                    }
                }
                Kind::Key { name, quoted } => {
                    let Some(f) = frames.last_mut() else { continue };
                    f.key = Some(name.clone());
                    // Entity ids are keys too, but the loader names an id used twice itself.
                    if !quoted && !name.chars().all(|c| c.is_ascii_digit()) {
                        let first = f.keys.iter().find(|(key, _, _)| key == name);
                        if let (Some(&(_, l, c)), None) = (first, walk.repeated) {
                            walk.repeated = Some((k, (l, c)));
                        }
                        f.keys.push((name.clone(), token.line, token.column));
                    }
                    let value = self.tokens.get(k + 1).map(|t| &t.kind);
                    // An unquoted or single-quoted name still names its entity (the error is about its quotes).
                    if name == "name"
                        && let Some(Kind::Str(value) | Kind::Word(value)) = value
                    {
                        walk.name_entity(value);
                    }
                }
                Kind::Str(_) | Kind::Word(_) | Kind::Other => {}
            }
        }
        walk
    }

    /// The entity, component and field at `(line, column)`, worded for an error: ``entity 3 ("cart"): field
    /// `Joint.limits.min` ``, ``entity 1: component `TaskSettings` ``, or `scene` outside every entity.
    pub fn place_at(&self, line: usize, column: usize) -> String {
        let names = self.walk((usize::MAX, usize::MAX)).names;
        describe(&path(&self.walk((line, column)).frames), &names)
    }

    /// The first field written twice in one struct, if any.
    pub fn repeated_field(&self) -> Option<Repeated> {
        let (k, first) = self.walk((usize::MAX, usize::MAX)).repeated?;
        let (line, column) = (self.tokens[k].line, self.tokens[k].column);
        Some(Repeated {
            line,
            column,
            first,
            place: self.place_at(line, column),
        })
    }

    /// Where the text ends with brackets left open: how many, and where the innermost was opened.
    pub fn unclosed(&self) -> Option<(usize, (usize, usize))> {
        let frames = self.walk((usize::MAX, usize::MAX)).frames;
        let last = frames.last()?;
        Some((frames.len(), (last.line, last.column)))
    }

    /// Whether `(line, column)` is at or after the last token (the deserializer ran out of text there).
    pub fn at_end(&self, line: usize, column: usize) -> bool {
        self.tokens
            .last()
            .is_none_or(|t| (line, column) >= (t.line, t.column))
    }

    /// The token that starts at `(line, column)`, if one does.
    fn token_at(&self, line: usize, column: usize) -> Option<&Kind> {
        let read = self.walk((line, column)).read;
        let token = self.tokens.get(read.checked_sub(1)?)?;
        ((token.line, token.column) == (line, column)).then_some(&token.kind)
    }

    /// Whether a string value starts at `(line, column)`.
    pub fn string_at(&self, line: usize, column: usize) -> bool {
        matches!(self.token_at(line, column), Some(Kind::Str(_)))
    }

    /// Where a component whose closing `)` is missing was opened, when the deserializer stopped at `(line,
    /// column)` on the next component's type path (read as a field of this one): its short type name, line
    /// and column.
    pub fn component_left_open_at(
        &self,
        line: usize,
        column: usize,
    ) -> Option<(String, usize, usize)> {
        // A type path, not a field name written in quotes (`"kind": Fixed`).
        if !matches!(
            self.token_at(line, column),
            Some(Kind::Key { name, quoted: true }) if name.contains("::")
        ) {
            return None;
        }
        // Frames: the scene `(`, `entities: {`, the entity's `(`, `components: {`, the component's `(`.
        let frames = self.walk((line, column)).frames;
        let (Some(component), Some(Step::Key(type_path))) =
            (frames.get(4), frames.get(3).and_then(Frame::step))
        else {
            return None;
        };
        let short = type_path
            .rsplit("::")
            .next()
            .unwrap_or(&type_path)
            .to_string();
        Some((short, component.line, component.column))
    }

    /// The place of a field whose `:` is missing, when the deserializer stopped at `(line, column)` right after
    /// its name: the word before the position taken as the field's key. `None` if no word comes before it.
    pub fn place_of_word_before(&self, line: usize, column: usize) -> Option<(String, String)> {
        let before = self
            .tokens
            .iter()
            .rposition(|t| (t.line, t.column) < (line, column))?;
        let Kind::Word(word) = &self.tokens[before].kind else {
            return None;
        };
        let (l, c) = (self.tokens[before].line, self.tokens[before].column);
        let mut frames = self.walk((l, c)).frames;
        frames.last_mut()?.key = Some(word.clone());
        let names = self.walk((usize::MAX, usize::MAX)).names;
        Some((word.clone(), describe(&path(&frames), &names)))
    }

    /// The enum variant whose `(` comes right before `(line, column)`, when that is where the deserializer
    /// stopped: `Position` for `Position("tip")`, whose fields are written by name.
    pub fn variant_opened_before(&self, line: usize, column: usize) -> Option<&str> {
        let at = self
            .tokens
            .iter()
            .position(|t| (t.line, t.column) >= (line, column))?;
        let kind = |back: usize| at.checked_sub(back).map(|k| &self.tokens[k].kind);
        match (kind(2), kind(1)) {
            (Some(Kind::Word(variant)), Some(Kind::Open('('))) if variant != "Some" => {
                Some(variant)
            }
            _ => None,
        }
    }

    /// Whether `Some(` comes right before `(line, column)`: a `Some` found there is a second one, `Some(Some(..))`.
    pub fn some_opened_before(&self, line: usize, column: usize) -> bool {
        let Some(at) = self
            .tokens
            .iter()
            .position(|t| (t.line, t.column) >= (line, column))
        else {
            return false;
        };
        let kind = |back: usize| at.checked_sub(back).map(|k| &self.tokens[k].kind);
        matches!(
            (kind(2), kind(1)),
            (Some(Kind::Word(word)), Some(Kind::Open('('))) if word == "Some"
        )
    }

    /// The bracket innermost open just before `(line, column)`: the bracket, and the line and column it was opened
    /// at.
    pub fn open_before(&self, line: usize, column: usize) -> Option<(char, usize, usize)> {
        // Up to the column before: the token at the position itself (a closing bracket) is not read.
        let frames = self.walk((line, column.saturating_sub(1))).frames;
        let last = frames.last()?;
        Some((last.bracket, last.line, last.column))
    }

    /// Whether the text holds no tokens at all (empty, or comments and blanks only).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether a key starts at `(line, column)`.
    pub fn key_at(&self, line: usize, column: usize) -> bool {
        matches!(self.token_at(line, column), Some(Kind::Key { .. }))
    }
}

impl Walk {
    /// Takes `name`, the value of a `name` field just read, as its entity's name where its component is a
    /// naming one ranked above the name kept so far.
    fn name_entity(&mut self, name: &str) {
        let path = path(&self.frames);
        let (Some(entity), [_, _, _, Step::Key(type_path), Step::Key(_)]) =
            (entity_of(&path), &path[..])
        else {
            return;
        };
        let short = type_path.rsplit("::").next().unwrap_or(type_path);
        let Some(rank) = NAMING.iter().position(|n| *n == short) else {
            return;
        };
        match self.names.iter_mut().find(|(e, _, _)| *e == entity) {
            Some(kept) if kept.1 > rank => *kept = (entity, rank, name.to_string()),
            Some(_) => {}
            None => self.names.push((entity, rank, name.to_string())),
        }
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

fn describe(path: &[Step], names: &[(String, usize, String)]) -> String {
    let Some(id) = entity_of(path) else {
        return "scene".to_string();
    };
    let entity = match names.iter().find(|(e, _, _)| *e == id) {
        Some((_, _, name)) => format!("entity {id} (\"{name}\")"),
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
        return format!("{entity}: component `{component}`");
    }
    let mut field = component;
    // A type path as a key inside a component is the next component, read as a field because a bracket of
    // this one was left open: the place is this component.
    let inside = path[4..]
        .iter()
        .take_while(|s| !matches!(s, Step::Key(k) if k.contains("::")));
    if inside.clone().next().is_none() {
        return format!("{entity}: component `{field}`");
    }
    for step in inside {
        match step {
            Step::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Step::Item(i) => field.push_str(&format!("[{i}]")),
        }
    }
    format!("{entity}: field `{field}`")
}

/// A token before keys are told from values.
#[derive(Debug)]
enum Lexeme {
    Open(char),
    Close,
    Word(String),
    Str(String),
    Char(String),
    Colon,
    Comma,
    Other,
}

/// A position in RON text, moved a character at a time. It walks the text itself, by byte offset: a copy as
/// characters would take four bytes for each of the text's.
struct Cursor<'t> {
    text: &'t str,
    /// Byte offset of the current character.
    i: usize,
    line: usize,
    column: usize,
}

impl Cursor<'_> {
    /// The text from here on.
    fn rest(&self) -> &str {
        &self.text[self.i..]
    }

    fn at(&self, k: usize) -> Option<char> {
        self.rest().chars().nth(k)
    }

    /// How many characters from here on satisfy `f`.
    fn run(&self, f: impl Fn(char) -> bool) -> usize {
        self.rest().chars().take_while(|&c| f(c)).count()
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
            self.i += c.len_utf8();
        }
    }

    /// Reads a string or character literal from its opening `quote`; returns its text (escapes reduced to the
    /// escaped character).
    fn quoted(&mut self, quote: char) -> String {
        self.advance(1);
        let mut value = String::new();
        while let Some(c) = self.at(0) {
            self.advance(1);
            match c {
                _ if c == quote => break,
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
        // Past the `r`, one byte.
        let hashes = self.rest()[1..].chars().take_while(|&c| c == '#').count();
        if self.at(1 + hashes) != Some('"') {
            return None;
        }
        self.advance(2 + hashes);
        let closing = "#".repeat(hashes);
        let mut value = String::new();
        while let Some(c) = self.at(0) {
            // Past the `"`, one byte.
            if c == '"' && self.rest()[1..].starts_with(&closing) {
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
/// One at a time, so that only the outline's tokens are ever held.
fn lex(text: &str) -> impl Iterator<Item = (Lexeme, usize, usize)> + '_ {
    let mut cursor = Cursor {
        text,
        i: 0,
        line: 1,
        column: 1,
    };
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '+' | '-');
    std::iter::from_fn(move || {
        loop {
            let c = cursor.at(0)?;
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
                ('"', _) => Lexeme::Str(cursor.quoted('"')),
                ('r', Some('"' | '#')) if let Some(s) = cursor.raw_string() => Lexeme::Str(s),
                // A character literal ('x', '\n', '\u{7D}'): read like a string, to its closing quote.
                ('\'', _) => Lexeme::Char(cursor.quoted('\'')),
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
                    let w = cursor.rest().chars().take(n).collect();
                    cursor.advance(n);
                    Lexeme::Word(w)
                }
                _ => {
                    cursor.advance(1);
                    Lexeme::Other
                }
            };
            return Some((lexeme, at.0, at.1));
        }
    })
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
            "entity 1 (\"slider\"): field `TaskSettings.episode_length`"
        );
        assert_eq!(
            place("x)))"),
            "entity 1 (\"slider\"): field `ActionSpace.actuators[1].range.max`"
        );
        assert_eq!(
            place("\"Dynamic\""),
            "entity 3 (\"cart\"): field `Body.kind`"
        );
        assert_eq!(
            place("\"qamlab_sim::authoring::Body\""),
            "entity 3 (\"cart\"): component `Body`"
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
            "entity 1 (\"slider\"): field `TaskSettings.episode_length`"
        );
        // The same key in two list items, or in two components, is no repeat (SCENE has both).
        assert!(SCENE.matches("name: \"p").count() == 2 && SCENE.matches("name:").count() == 4);
        assert_eq!(Outline::read(SCENE).repeated_field(), None);
        let cut = &SCENE[..SCENE.find("3: (").unwrap()];
        let outline = Outline::read(cut);
        assert_eq!(outline.unclosed(), Some((2, (4, 13))));
        assert!(outline.at_end(18, 10) && !outline.at_end(2, 1));
    }

    #[test]
    fn strings_comments_and_characters_do_not_confuse_the_outline() {
        // Columns count characters, as RON's do; strings, raw strings, character literals and nested comments
        // hide brackets, colons and quotes.
        let text = "(\n  entities: {\n    1: (\n      components: {\n        \"a::B\": (\n          \
                    note: \"pølé😀 (: \\\" x: [\", /* a /* nested ( */ comment */ raw: r#\"a \"b: (\"#,\n          \
                    letter: '\\u{7D}', other: ')', max: bad,\n        ),\n      },\n    ),\n  },\n)\n";
        let outline = Outline::read(text);
        let line = text.lines().nth(6).unwrap();
        let column = |needle: &str| line[..line.find(needle).unwrap()].chars().count() + 1;
        assert_eq!(
            outline.place_at(7, column("bad")),
            "entity 1: field `B.max`"
        );
        assert_eq!(
            outline.place_at(7, column("')'")),
            "entity 1: field `B.other`"
        );
        let line6 = text.lines().nth(5).unwrap();
        let raw = line6[..line6.find("r#").unwrap()].chars().count() + 1;
        assert_eq!(outline.place_at(6, raw), "entity 1: field `B.raw`");
        assert!(outline.string_at(6, raw) && outline.key_at(6, 11));
        assert_eq!((outline.unclosed(), outline.repeated_field()), (None, None));
        // A key before any bracket stops nothing: the repeat after it is still found.
        let stray = format!(
            "x: 1\n{}",
            text.replace("other: ')',", "other: ')', max: 2,")
        );
        let repeated = Outline::read(&stray).repeated_field().unwrap();
        assert_eq!(repeated.place, "entity 1: field `B.max`");
    }
}
