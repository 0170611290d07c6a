// Keeps the now-playing card current without a reload: polls the
// assistant's own API with the session cookie every few seconds while the
// page is visible. The server-rendered card is the starting point, so a
// screen reader hears the live region only when the card really changes.
(function () {
  var card = document.getElementById("now-playing");
  if (!card || !window.fetch) return;
  var title = card.querySelector(".np-title");
  var artist = card.querySelector(".np-artist");
  var shown = JSON.stringify(title && artist ? { title: title.textContent, artist: artist.textContent } : null);
  var EMPTY = card.textContent.trim();

  function render(np) {
    card.textContent = "";
    var p = document.createElement("p");
    if (np) {
      var t = document.createElement("strong");
      t.className = "np-title";
      t.textContent = np.title;
      var a = document.createElement("span");
      a.className = "np-artist";
      a.textContent = np.artist;
      p.appendChild(t);
      p.appendChild(document.createTextNode(" by "));
      p.appendChild(a);
    } else {
      p.className = "np-empty";
      p.textContent = EMPTY;
    }
    card.appendChild(p);
  }

  function poll() {
    if (document.hidden) return setTimeout(poll, 2000);
    fetch(card.getAttribute("data-live-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        // Signed out elsewhere: stop asking.
        if (r.status === 401 || r.status === 403) return "stop";
        return r.ok ? r.json() : null;
      })
      .then(function (body) {
        if (body === "stop") return;
        if (body) {
          var key = JSON.stringify(body.now_playing);
          if (key !== shown) { shown = key; render(body.now_playing); }
        }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
