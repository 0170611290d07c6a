//! How `/link/trace` draws the trace ([`super::trace`]): the events of each
//! attempt, titled by what it was, as an SVG sequence diagram with a lane for
//! the user (browser redirects are two hops through it) and labels wrapped to
//! their room. Layout only: nothing here records or reads the database.

use super::trace::USER;
use crate::clock::format_utc;
use crate::store::{Leg, TraceEvent};

/// The diagram's width in SVG units: about the card's width on a desktop
/// (`main` is 48rem), so a unit is about a CSS pixel and text keeps its size.
pub const WIDTH: i64 = 680;
/// The labels' font size in SVG units, and the distance between their lines.
pub const FONT_SIZE: i64 = 14;
const LINE_HEIGHT: i64 = 18;
/// A generous average advance of a character at [`FONT_SIZE`] (tenths of a
/// unit): wrapping by this keeps lines inside their room in wide fonts too.
const CHAR_TENTHS: i64 = 80;
/// Space kept between a label and the lifelines around it.
const PAD: i64 = 8;
/// Attempts drawn, newest first.
pub const MAX_ATTEMPTS: usize = 5;

/// A participant's lifeline.
pub struct Lane {
    pub name: String,
    /// Where the lifeline runs.
    pub x: i64,
    /// Where its (centred) name is written: moved in so a long name stays inside the diagram.
    pub name_x: i64,
}

/// The user's browser, this party and the peer, left to right.
pub fn lanes(here: &str, peer: &str) -> Vec<Lane> {
    [(USER, 40), (here, 240), (peer, 610)]
        .into_iter()
        .map(|(name, x)| {
            // Names are bold: a tenth wider than the labels' average.
            let half = (name.chars().count() as i64 * CHAR_TENTHS * 11 / 100 + 1) / 2;
            Lane { name: name.to_owned(), x, name_x: x.clamp(half, WIDTH - half) }
        })
        .collect()
}

/// One line of a label, at its baseline.
pub struct LabelLine {
    pub text: String,
    pub y: i64,
}

/// A message of the trace, placed on the diagram.
pub struct Arrow {
    pub leg: Leg,
    pub from: String,
    pub to: String,
    /// The whole text: the list and the tooltip show it.
    pub summary: String,
    /// `summary` wrapped to the room between the lifelines the label sits between.
    pub lines: Vec<LabelLine>,
    pub from_x: i64,
    pub to_x: i64,
    pub y: i64,
    pub label_x: i64,
}

/// What an attempt was, from its first messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The user pressed Link here: legs A–G, this party sending A.
    LinkHere,
    /// The user started at the peer: this party answered A.
    LinkThere,
    /// An authorization update from this party's settings (leg E first).
    ChangeHere,
    /// The peer pushed a new reciprocal grant (leg F first).
    ChangeThere,
    /// The user unlinked here: this party revoked (RFC 7009).
    UnlinkHere,
    /// The peer revoked its token: the user unlinked there.
    UnlinkThere,
    /// The start of the attempt is no longer kept (pruned, or past the page's limit).
    Other,
}

impl AttemptKind {
    /// The kind of the attempt these events (oldest first) make up, as `here` saw it.
    pub fn of(events: &[&TraceEvent], here: &str) -> Self {
        let Some(first) = events.first() else { return Self::Other };
        let ours = first.sender == here;
        if let Some(revocation) = events.iter().find(|e| e.leg == Leg::Revocation) {
            return if revocation.sender == here { Self::UnlinkHere } else { Self::UnlinkThere };
        }
        match first.leg {
            Leg::A if ours => Self::LinkHere,
            Leg::A => Self::LinkThere,
            Leg::E if first.sender == USER => Self::ChangeHere,
            Leg::F | Leg::G if !ours && first.sender != USER => Self::ChangeThere,
            _ => Self::Other,
        }
    }

    /// The attempt's heading: what it was and where it started.
    pub fn title(self, peer: &str) -> String {
        match self {
            Self::LinkHere => "Linking, started here".to_owned(),
            Self::LinkThere => format!("Linking, started at {peer}"),
            Self::ChangeHere => "Permissions changed here".to_owned(),
            Self::ChangeThere => format!("Permissions changed at {peer}"),
            Self::UnlinkHere => "Unlinked here".to_owned(),
            Self::UnlinkThere => format!("{peer} ended the link"),
            Self::Other => format!("Messages with {peer}"),
        }
    }

    /// The party where the user started it, when known.
    pub fn started_at<'a>(self, here: &'a str, peer: &'a str) -> Option<&'a str> {
        match self {
            Self::LinkHere | Self::ChangeHere | Self::UnlinkHere => Some(here),
            Self::LinkThere | Self::ChangeThere | Self::UnlinkThere => Some(peer),
            Self::Other => None,
        }
    }

    /// Its name in the page's `data-kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkHere => "link-here",
            Self::LinkThere => "link-there",
            Self::ChangeHere => "change-here",
            Self::ChangeThere => "change-there",
            Self::UnlinkHere => "unlink-here",
            Self::UnlinkThere => "unlink-there",
            Self::Other => "other",
        }
    }
}

/// One attempt: its heading and its diagram.
pub struct AttemptDiagram {
    pub id: String,
    /// Tells the diagrams' arrowhead definitions apart (ids are per document).
    pub index: usize,
    pub kind: AttemptKind,
    pub title: String,
    /// When its first message was recorded, as the audit page writes times.
    pub when: String,
    pub started_at: Option<String>,
    pub height: i64,
    pub arrows: Vec<Arrow>,
}

/// `text` in lines of at most `max` characters, broken between words (a
/// word longer than a line is cut, after a separator when it has one): SVG
/// text does not wrap.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while !word.is_empty() {
            let used = line.chars().count();
            let gap = usize::from(used > 0);
            if used + gap + word.len() <= max {
                if gap == 1 {
                    line.push(' ');
                }
                line.extend(word.drain(..));
            } else if used > 0 {
                lines.push(std::mem::take(&mut line));
            } else {
                // Cut after a separator when there is one, so `client_id=` stays whole.
                let cut = word[..max].iter().rposition(|c| "=/-:,&".contains(*c)).map_or(max, |i| i + 1);
                lines.push(word.drain(..cut).collect());
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The characters a label may use between lifelines at `left` and `right`.
fn room(left: i64, right: i64) -> usize {
    ((right - left - 2 * PAD) * 10 / CHAR_TENTHS).max(1) as usize
}

/// A message as drawn: who to whom, and its text.
struct Hop {
    leg: Leg,
    from: String,
    to: String,
    text: String,
}

/// Legs A and B go through the user's browser (RFC 6749 4.1 steps A–C): a
/// redirect to the browser, then the browser's request. The trace stores
/// them party to party; drawn, they are the two hops through "You", and the
/// hop this party saw keeps the stored words. Derived here rather than
/// stored, so traces stored before draw the same way.
fn hops(e: &TraceEvent, here: &str) -> Vec<Hop> {
    let hop = |from: &str, to: &str, text: String| Hop { leg: e.leg, from: from.to_owned(), to: to.to_owned(), text };
    let path = match e.leg {
        Leg::A => "/authorize",
        Leg::B => "/link/callback",
        _ => return vec![hop(&e.sender, &e.receiver, e.summary.clone())],
    };
    if e.sender == USER || e.receiver == USER {
        return vec![hop(&e.sender, &e.receiver, e.summary.clone())];
    }
    // "303 to …: scope …" carries the query after its first ": ".
    let query = e.summary.split_once(": ").map_or(e.summary.as_str(), |(_, rest)| rest);
    let request = |summary: &str| match summary.starts_with("GET ") {
        true => summary.to_owned(),
        false => format!("GET {path}: {query}"),
    };
    if e.sender == here {
        vec![hop(&e.sender, USER, e.summary.clone()), hop(USER, &e.receiver, request(""))]
    } else {
        vec![
            hop(&e.sender, USER, format!("redirect to {} {path}", e.receiver)),
            hop(USER, &e.receiver, request(&e.summary)),
        ]
    }
}

/// Splits the events (oldest first) into attempts. Consecutive events of one
/// attempt id make one attempt, except at the party receiving pushes: every
/// later push (leg F in, then this party redeeming with G) is an attempt of
/// its own although it is filed under the same grant.
fn attempts<'a>(events: &'a [TraceEvent], here: &str) -> Vec<Vec<&'a TraceEvent>> {
    let mut out: Vec<Vec<&TraceEvent>> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let push_arrives = e.leg == Leg::F
            && e.receiver == here
            && events.get(i + 1).is_some_and(|n| n.attempt == e.attempt && n.leg == Leg::G && n.sender == here);
        match out.last_mut() {
            Some(current)
                if current[0].attempt == e.attempt
                    && !(push_arrives && current.iter().any(|c| matches!(c.leg, Leg::F | Leg::G))) =>
            {
                current.push(e)
            }
            _ => out.push(vec![e]),
        }
    }
    out
}

/// Lays the events (oldest first) out as diagrams, newest attempt first, at
/// most [`MAX_ATTEMPTS`].
pub fn diagram(events: &[TraceEvent], here: &str, peer: &str) -> Vec<AttemptDiagram> {
    let lanes = lanes(here, peer);
    let x = |who: &str| lanes.iter().find(|l| l.name == who).map_or(lanes[0].x, |l| l.x);
    let mut groups = attempts(events, here);
    groups.reverse();
    groups.truncate(MAX_ATTEMPTS);
    let mut out = Vec::with_capacity(groups.len());
    for (index, group) in groups.into_iter().enumerate() {
        let kind = AttemptKind::of(&group, here);
        let mut arrows = Vec::new();
        // Below the lane names.
        let mut top = 44;
        for hop in group.iter().flat_map(|e| hops(e, here)) {
            let (from_x, to_x) = (x(&hop.from), x(&hop.to));
            let (left, right) = (from_x.min(to_x), from_x.max(to_x));
            // The widest stretch between lifelines the arrow spans carries its label.
            let mut stops: Vec<i64> = lanes.iter().map(|l| l.x).filter(|x| (left..=right).contains(x)).collect();
            stops.sort_unstable();
            let (l, r) = stops.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| b - a).unwrap_or((left, right));
            // The leg letter and a space open the first line.
            let prefix = hop.leg.as_str().chars().count() + 1;
            let mut wrapped = wrap(&format!("{} {}", hop.leg, hop.text), room(l, r));
            wrapped[0] = wrapped[0].chars().skip(prefix).collect();
            let lines: Vec<LabelLine> = wrapped
                .into_iter()
                .enumerate()
                .map(|(i, text)| LabelLine { text, y: top + FONT_SIZE + i as i64 * LINE_HEIGHT })
                .collect();
            let y = lines.last().map_or(top, |l| l.y) + 8;
            arrows.push(Arrow {
                leg: hop.leg,
                from: hop.from,
                to: hop.to,
                summary: hop.text,
                lines,
                from_x,
                to_x,
                y,
                label_x: l + PAD,
            });
            top = y + 14;
        }
        let first_at = group.first().map_or(0, |e| e.at);
        out.push(AttemptDiagram {
            id: group.first().map(|e| e.attempt.clone()).unwrap_or_default(),
            index,
            kind,
            title: kind.title(peer),
            when: format_utc(first_at),
            started_at: kind.started_at(here, peer).map(str::to_owned),
            height: top + 6,
            arrows,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: &str = "Aria Assistant";
    const PEER: &str = "Tempo Music";

    fn event(attempt: &str, leg: Leg, from: &str, to: &str, summary: &str, at: i64) -> TraceEvent {
        TraceEvent {
            seq: at * 1_000_000,
            user_id: "u".into(),
            attempt: attempt.into(),
            leg,
            sender: from.into(),
            receiver: to.into(),
            summary: summary.into(),
            at,
        }
    }

    /// A link started here, as `link/pages.rs` and the hooks record it.
    fn linked_here(attempt: &str, at: i64) -> Vec<TraceEvent> {
        vec![
            event(attempt, Leg::A, HERE, PEER, "302 to Tempo Music/authorize: scope player:read, PKCE S256, state", at),
            event(attempt, Leg::B, PEER, HERE, "authorization response: code (redacted), state, iss", at + 1),
            event(
                attempt,
                Leg::C,
                HERE,
                PEER,
                "POST /token authorization_code: code, code_verifier (redacted)",
                at + 1,
            ),
            event(attempt, Leg::D, PEER, HERE, "access and refresh token (scope player:read), reciprocal: x", at + 1),
            event(attempt, Leg::E, USER, HERE, "approved: assistant:notify", at + 2),
            event(attempt, Leg::F, HERE, PEER, "reciprocal grant: code (scope x), access_token (redacted)", at + 2),
            event(attempt, Leg::F, PEER, HERE, "200 {}", at + 2),
        ]
    }

    /// The receiving end of a push, all filed under the grant `gid`.
    fn push_received(gid: &str, at: i64) -> Vec<TraceEvent> {
        vec![
            event(gid, Leg::F, PEER, HERE, "reciprocal grant: code + access_token (redacted)", at),
            event(gid, Leg::G, HERE, PEER, "authorization_code grant: the pushed code", at),
            event(gid, Leg::G, PEER, HERE, "access token (scope x), refresh token", at),
            event(gid, Leg::F, HERE, PEER, "200 {}", at),
        ]
    }

    fn kind(events: &[TraceEvent]) -> AttemptKind {
        AttemptKind::of(&events.iter().collect::<Vec<_>>(), HERE)
    }

    #[test]
    fn a_browser_redirect_is_drawn_through_the_users_lane() {
        let drawn = diagram(&linked_here("f1", 100), HERE, PEER);
        let arrows = &drawn[0].arrows;
        let hops: Vec<(Leg, &str, &str)> = arrows.iter().map(|a| (a.leg, a.from.as_str(), a.to.as_str())).collect();
        assert_eq!(
            hops[..4],
            [(Leg::A, HERE, USER), (Leg::A, USER, PEER), (Leg::B, PEER, USER), (Leg::B, USER, HERE)],
            "legs A and B are two hops each, through the browser"
        );
        assert_eq!(arrows[0].summary, "302 to Tempo Music/authorize: scope player:read, PKCE S256, state");
        assert_eq!(arrows[1].summary, "GET /authorize: scope player:read, PKCE S256, state");
        assert_eq!(arrows[2].summary, "redirect to Aria Assistant /link/callback");
        assert_eq!(arrows[3].summary, "GET /link/callback: code (redacted), state, iss");
        let lanes = lanes(HERE, PEER);
        assert_eq!((arrows[1].from_x, arrows[1].to_x), (lanes[0].x, lanes[2].x));
        // The back channel stays direct.
        assert_eq!((arrows[4].leg, arrows[4].from.as_str(), arrows[4].to.as_str()), (Leg::C, HERE, PEER));
        assert_eq!(arrows.len(), 9);
        // Arrows go down the page, each below the last one's label.
        for w in arrows.windows(2) {
            assert!(w[1].lines[0].y > w[0].y, "a label overlaps the arrow above it");
        }
        assert!(drawn[0].height > arrows[8].y);
    }

    #[test]
    fn at_the_peer_the_browser_hops_keep_the_words_the_peer_saw() {
        let events = [
            event("g1", Leg::A, PEER, HERE, "GET /authorize: client_id=a, scope x, PKCE S256, state", 5),
            event("g1", Leg::B, HERE, PEER, "302 to /link/callback: code (redacted), state, iss", 6),
        ];
        let drawn = diagram(&events, HERE, PEER);
        let words: Vec<(&str, &str, &str)> =
            drawn[0].arrows.iter().map(|a| (a.from.as_str(), a.to.as_str(), a.summary.as_str())).collect();
        assert_eq!(
            words,
            [
                (PEER, USER, "redirect to Aria Assistant /authorize"),
                (USER, HERE, "GET /authorize: client_id=a, scope x, PKCE S256, state"),
                (HERE, USER, "302 to /link/callback: code (redacted), state, iss"),
                (USER, PEER, "GET /link/callback: code (redacted), state, iss"),
            ]
        );
    }

    #[test]
    fn long_labels_wrap_within_their_room_and_are_never_cut() {
        let long = "POST /token grant_type=urn:ietf:params:oauth:grant-type:reciprocal-and-then-some \
                    code (scope assistant:announce assistant:notify player:read player:control), access_token";
        let events = [
            event("f", Leg::E, USER, HERE, long, 1),
            event("f", Leg::F, HERE, PEER, long, 1),
            event("f", Leg::A, HERE, PEER, long, 1),
        ];
        let drawn = diagram(&events, HERE, PEER);
        let lanes = lanes(HERE, PEER);
        for a in &drawn[0].arrows {
            assert!(a.lines.len() > 1, "{} fits one line?", a.summary);
            let (left, right) = (a.from_x.min(a.to_x), a.from_x.max(a.to_x));
            let stretch = lanes.iter().map(|l| l.x).filter(|x| *x > a.label_x && *x <= right).min().unwrap();
            assert!(a.label_x >= left);
            let max = room(a.label_x - PAD, stretch);
            for (i, line) in a.lines.iter().enumerate() {
                let used = line.text.chars().count() + if i == 0 { a.leg.as_str().len() + 1 } else { 0 };
                assert!(used <= max, "{:?} is longer than {max}", line.text);
                assert!(!line.text.contains('…'));
            }
            let words: Vec<&str> = a.lines.iter().map(|l| l.text.as_str()).collect();
            assert_eq!(words.concat().replace(' ', ""), a.summary.replace(' ', ""), "nothing is lost");
            assert!(a.summary.contains(long), "the list and the tooltip keep the whole text");
        }
        // A message across the whole width is labelled in the widest stretch, past this party's lifeline.
        let through = drawn[0].arrows.iter().find(|a| a.from == USER && a.to == PEER).unwrap();
        assert_eq!(through.label_x, lanes[1].x + PAD);
    }

    #[test]
    fn wrap_breaks_between_words_and_cuts_only_words_longer_than_a_line() {
        assert_eq!(wrap("one two three", 7), ["one two", "three"]);
        assert_eq!(wrap("abcdefghij k", 4), ["abcd", "efgh", "ij k"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(wrap("client_id=voice-assistant,", 12), ["client_id=", "voice-", "assistant,"]);
    }

    #[test]
    fn each_attempt_is_titled_by_what_it_was_and_where_it_started() {
        assert_eq!(kind(&linked_here("f", 1)), AttemptKind::LinkHere);
        let mut at_peer = vec![event("g", Leg::A, PEER, HERE, "GET /authorize: client_id=a", 1)];
        at_peer.extend(push_received("g", 2));
        assert_eq!(kind(&at_peer), AttemptKind::LinkThere);
        assert_eq!(kind(&[event("f", Leg::E, USER, HERE, "changed to: x", 1)]), AttemptKind::ChangeHere);
        assert_eq!(kind(&push_received("g", 1)), AttemptKind::ChangeThere);
        assert_eq!(kind(&[event("f", Leg::Revocation, HERE, PEER, "POST /revoke", 1)]), AttemptKind::UnlinkHere);
        assert_eq!(kind(&[event("r", Leg::Revocation, PEER, HERE, "POST /revoke", 1)]), AttemptKind::UnlinkThere);
        assert_eq!(kind(&[event("f", Leg::C, HERE, PEER, "POST /token", 1)]), AttemptKind::Other);

        assert_eq!(AttemptKind::LinkHere.title(PEER), "Linking, started here");
        assert_eq!(AttemptKind::LinkThere.title(PEER), "Linking, started at Tempo Music");
        assert_eq!(AttemptKind::UnlinkThere.title(PEER), "Tempo Music ended the link");
        assert_eq!(AttemptKind::ChangeThere.started_at(HERE, PEER), Some(PEER));

        let drawn = diagram(&linked_here("f", 1_796_150_700), HERE, PEER);
        assert_eq!(drawn[0].title, "Linking, started here");
        assert_eq!(drawn[0].when, "1 Dec 2026, 18:45 UTC", "the first message's time, as the audit page writes it");
        assert_eq!(drawn[0].started_at.as_deref(), Some(HERE));
    }

    #[test]
    fn a_later_push_under_the_same_grant_is_an_attempt_of_its_own() {
        let mut events = vec![
            event("g", Leg::A, PEER, HERE, "GET /authorize: client_id=a", 1),
            event("g", Leg::B, HERE, PEER, "302 to /link/callback: code (redacted), state, iss", 1),
        ];
        events.extend(push_received("g", 2));
        events.extend(push_received("g", 50));
        let drawn = diagram(&events, HERE, PEER);
        let kinds: Vec<AttemptKind> = drawn.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AttemptKind::ChangeThere, AttemptKind::LinkThere]);
        // The starting party's own push and its answer stay one attempt.
        assert_eq!(diagram(&linked_here("f", 1), HERE, PEER).len(), 1);
    }

    #[test]
    fn newest_attempt_first_and_at_most_five_with_unique_marker_indexes() {
        let events: Vec<TraceEvent> =
            (0..7).flat_map(|i| linked_here(&format!("f{i}"), 100 * i64::from(i) + 1)).collect();
        let drawn = diagram(&events, HERE, PEER);
        let ids: Vec<&str> = drawn.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["f6", "f5", "f4", "f3", "f2"]);
        let indexes: Vec<usize> = drawn.iter().map(|a| a.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3, 4]);
    }

    /// The peer revoking its token (its user unlinked there) is recorded
    /// here as an attempt of its own, titled as the peer ending the link.
    #[actix_web::test]
    async fn the_peers_revocation_is_titled_as_the_peer_ending_the_link() {
        use crate::server::hooks::IssuanceHooks;
        let app = crate::test_support::unit::state(crate::clock::ManualClock::new(1_000)).await;
        let grant = crate::test_support::unit::user_grant(&app, "g-1").await;
        super::super::hooks::LinkHooks.revoked_by_client(&app, &grant).await;
        let party = app.config.party;
        let drawn = diagram(&app.store.trace_of("user-1", 10).await.unwrap(), party.name, party.peer.name);
        assert_eq!(drawn.len(), 1);
        assert_eq!(drawn[0].kind, AttemptKind::UnlinkThere);
        assert_eq!(drawn[0].title, "Peer ended the link");
        assert_eq!(drawn[0].arrows[0].leg, Leg::Revocation);
    }

    #[test]
    fn lane_names_stay_inside_the_diagram() {
        for l in lanes("A rather long party name", "Another quite long party name") {
            let half = l.name.chars().count() as i64 * CHAR_TENTHS * 11 / 200;
            assert!(l.name_x - half >= 0 && l.name_x + half <= WIDTH, "{} at {}", l.name, l.name_x);
        }
    }
}
