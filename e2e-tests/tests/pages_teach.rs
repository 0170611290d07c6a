//! The pages explain the link and say what happened, in words a user reads:
//! what linking will do before it starts, outcome headings that state the
//! result in both directions, a deny that reads as a choice, messages that
//! are said once and end with their attempt, a way forward from every
//! unfinished step, and errors that say what to do, under the usual header.

mod common;

use common::*;

/// The text of the first `<h1>` of a page.
fn heading(html: &str) -> String {
    let start = html.find("<h1>").unwrap_or_else(|| panic!("no heading: {html}")) + 4;
    html[start..start + html[start..].find("</h1>").unwrap()].trim().to_owned()
}

/// The home-page notice, if there is one.
fn notice(html: &str) -> Option<&str> {
    let start = html.find("data-notice>")?;
    Some(&html[start..start + html[start..].find("</div>").unwrap()])
}

#[tokio::test]
async fn the_home_page_explains_linking_before_it_starts() {
    let pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(home.contains("data-explain"), "{home}");
    for step in [
        "You sign in at Tempo Music and allow Aria Assistant to use it.",
        "You come back here and answer one more question: may Tempo Music use Aria Assistant too?",
        "no second round of sign-ins and redirects",
    ] {
        assert!(home.contains(step), "{step}: {home}");
    }
    assert!(home.contains(r#"href="https://datatracker.ietf.org/doc/draft-ietf-oauth-reciprocal/""#), "{home}");
    assert!(home.contains(&format!(r#"href="{}/" data-peer>Open Tempo Music</a>"#, pair.b.url)), "{home}");
    assert!(home.contains(r#"href="/device""#), "the way to connect a device: {home}");
    assert!(!home.contains("/link/settings"), "nothing to set before linking: {home}");

    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "approve").await;
    assert_eq!(heading(&outcome), "Linked both ways");
    assert!(outcome.contains("Both ways: you allowed Tempo Music to"), "{outcome}");
    // Both directions, as on the home page.
    assert!(outcome.contains("Aria Assistant → Tempo Music") && outcome.contains("Tempo Music → Aria Assistant"));
    assert!(outcome.contains("<code>player:control</code>") && outcome.contains("<code>assistant:notify</code>"));
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(!home.contains("data-explain"), "once linked both ways, the explanation has done its work: {home}");
    assert!(notice(&home).is_none(), "the outcome was said on its own page, not again: {home}");
    assert!(home.contains("/link/settings"), "{home}");
}

#[tokio::test]
async fn a_deny_reads_as_a_choice_at_either_party() {
    let pair = spawn_pair().await;
    // At B, the first direction: the user chooses Deny.
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let (_, html) = submit(&alice, &format!("{}/link/start", pair.a.url), &home, &[]).await;
    let next = input_value(&html, "next").unwrap();
    let fields = [("username", "alice"), ("password", "wonderland"), ("next", next.as_str())];
    let (_, consent) = submit(&alice, &format!("{}/login", pair.b.url), &html, &fields).await;
    let (_, outcome) = follow(&alice, decide(&alice, &pair.b.url, &consent, "deny").await).await;
    assert_eq!(flow_step(&outcome), "done", "a choice, not a failure: {outcome}");
    assert_eq!(heading(&outcome), "Not linked");
    assert!(outcome.contains("You chose not to let Aria Assistant use Tempo Music"), "{outcome}");
    assert!(!outcome.contains("did not work"), "{outcome}");

    // At A, the second direction: Deny leaves one way.
    let outcome = link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "deny").await;
    assert_eq!(flow_step(&outcome), "done");
    assert_eq!(heading(&outcome), "Linked one way");
    assert!(outcome.contains("You chose not to let Tempo Music use Aria Assistant"), "{outcome}");
    assert!(outcome.contains("Tempo Music cannot use your Aria Assistant account."), "{outcome}");
}

#[tokio::test]
async fn an_unanswered_request_waits_on_the_home_page_until_a_newer_link_replaces_it() {
    let pair = spawn_pair().await;
    let alice = user_at_both(&pair, "alice").await;
    let (_, consent) = link_until_reciprocal(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland").await;
    let flow = input_value(&consent, "flow").unwrap();

    // She goes back home without answering: the request waits there, with the way to answer.
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let waiting = notice(&home).unwrap_or_else(|| panic!("no notice: {home}"));
    assert!(waiting.contains("Tempo Music asked to use your Aria Assistant account too"), "{waiting}");
    assert!(waiting.contains(&format!(r#"href="/link/reciprocal?flow={flow}""#)), "{waiting}");
    let (_, outcome) = page(&alice, &format!("{}/link/outcome?flow={flow}", pair.a.url)).await;
    assert_eq!(heading(&outcome), "One more question");
    assert!(outcome.contains(&format!(r#"href="/link/reciprocal?flow={flow}">Answer Tempo Music's request"#)));

    // She links again from B instead: the question at A is void, and said to be.
    let outcome = link(&alice, &pair.b.url, &pair.a.url, "alice", "wonderland", "approve").await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(home.contains(r#"data-link-state="mutual""#), "{home}");
    assert!(notice(&home).is_none(), "the old question is gone: {home}");
    let (_, old) = page(&alice, &format!("{}/link/outcome?flow={flow}", pair.a.url)).await;
    assert_eq!(flow_step(&old), "done");
    assert!(old.contains("Replaced by a newer link with Tempo Music."), "{old}");
    let (_, again) = page(&alice, &format!("{}/link/reciprocal?flow={flow}", pair.a.url)).await;
    assert_eq!(data_page(&again).as_deref(), Some("link-outcome"), "the old question cannot be answered: {again}");
}

#[tokio::test]
async fn an_unlink_message_ends_with_its_attempt() {
    let pair = spawn_pair().await;
    let alice = user_at_both(&pair, "alice").await;
    link(&alice, &pair.a.url, &pair.b.url, "alice", "wonderland", "approve").await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let (_, outcome) = submit(&alice, &format!("{}/link/unlink", pair.a.url), &home, &[]).await;
    assert_eq!(heading(&outcome), "Not linked");
    assert!(outcome.contains("Unlinked:"), "{outcome}");
    // Linked again, from B: A's home says so, and nothing of the unlink.
    link(&alice, &pair.b.url, &pair.a.url, "alice", "wonderland", "approve").await;
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(home.contains("Linked both ways with Tempo Music."), "{home}");
    assert!(!home.contains("Unlinked"), "{home}");
}

#[tokio::test]
async fn errors_say_what_to_do_under_the_usual_header() {
    let pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let res = alice.get(format!("{}/link/callback", pair.a.url)).send().await.unwrap();
    let page = expect_error_page(res, 400).await;
    assert!(page.contains("Signed in as <strong>alice</strong>"), "the header stays: {page}");
    assert!(page.contains(r#"action="/logout""#), "{page}");
    assert!(page.contains("This page is where Tempo Music sends you back after you allow linking"), "{page}");
    assert!(page.contains("Start linking from your home page."), "{page}");
    assert!(!page.contains("no state"), "no jargon: {page}");

    // A page error before anyone signed in has the header without a name,
    // and costs no session: nothing is written for a stranger's 404.
    let stranger = browser();
    let res = stranger.get(format!("{}/no-such-page", pair.a.url)).send().await.unwrap();
    assert_eq!(header(&res, "set-cookie"), None, "{res:?}");
    expect_error_page(res, 404).await;
    let res = stranger.get(format!("{}/login?next=a&next=b", pair.a.url)).send().await.unwrap();
    let page = expect_error_page(res, 400).await;
    assert!(!page.contains("Signed in as"), "{page}");
    assert!(page.contains("Aria Assistant"), "{page}");

    let (_, signup) = common::page(&stranger, &format!("{}/signup", pair.a.url)).await;
    assert!(signup.contains("Create your Aria Assistant account"), "{signup}");
}

#[tokio::test]
async fn settings_are_offered_only_to_a_linked_user() {
    let pair = spawn_pair().await;
    let alice = browser();
    login(&alice, &pair.a.url, "alice", "wonderland").await;
    let (_, settings) = page(&alice, &format!("{}/link/settings", pair.a.url)).await;
    assert_eq!(data_page(&settings).as_deref(), Some("settings"));
    assert!(!settings.contains(r#"name="scope""#), "no form before linking: {settings}");
    assert!(settings.contains("You are not linked with Tempo Music"), "{settings}");
    // A form posted anyway (an old tab) is refused in words.
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    let csrf = input_value(&home, "csrf_token").unwrap();
    let form = [("csrf_token", csrf.as_str()), ("scope", "assistant:notify")];
    let res = alice.post(format!("{}/link/settings", pair.a.url)).form(&form).send().await.unwrap();
    let refused = expect_error_page(res, 400).await;
    assert!(refused.contains("Link from your home page first."), "{refused}");
}

#[tokio::test]
async fn the_now_playing_card_goes_with_the_music_services_access() {
    let pair = spawn_pair().await;
    let alice = linked_alice(&pair).await;
    play_from_a(&alice, &pair, "jazz").await;
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"]["title"], "So What");
    // Tempo Music may no longer show cards (it keeps announcements): its card goes.
    let settings_at_a = format!("{}/link/settings", pair.a.url);
    let (_, settings) = page(&alice, &settings_at_a).await;
    let (_, outcome) = submit(&alice, &settings_at_a, &settings, &[("scope", "assistant:announce")]).await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"], serde_json::Value::Null);
    // Allowed again, it posts the next one.
    let (_, settings) = page(&alice, &settings_at_a).await;
    let both = [("scope", "assistant:announce"), ("scope", "assistant:notify")];
    let (_, outcome) = submit(&alice, &settings_at_a, &settings, &both).await;
    assert_eq!(flow_step(&outcome), "done", "{outcome}");
    play_from_a(&alice, &pair, "jazz").await;
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"]["title"], "So What");
    // Unlinked at B: A hears of it (RFC 7009) and forgets the card B posted.
    login(&alice, &pair.b.url, "alice", "wonderland").await;
    let (_, home) = page(&alice, &format!("{}/", pair.b.url)).await;
    submit(&alice, &format!("{}/link/unlink", pair.b.url), &home, &[]).await;
    assert_eq!(now_playing_at_a(&alice, &pair).await["now_playing"], serde_json::Value::Null);
    let (_, home) = page(&alice, &format!("{}/", pair.a.url)).await;
    assert!(!home.contains("So What"), "{home}");
}
