// Keeps the now-playing card current without a reload: polls the
// assistant's own API with the session cookie every two seconds.
(function () {
  var card = document.getElementById("now-playing");
  if (!card || !window.fetch) return;
  var shown = card.textContent;
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
      p.textContent = "Nothing yet. When Tempo Music plays something for you, it shows here.";
    }
    card.appendChild(p);
  }
  function poll() {
    fetch(card.getAttribute("data-live-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body) return;
        var key = JSON.stringify(body.now_playing);
        if (key !== shown) { shown = key; render(body.now_playing); }
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 2000); });
  }
  shown = null;
  setTimeout(poll, 2000);
})();
