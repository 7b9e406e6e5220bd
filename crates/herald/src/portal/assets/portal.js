// Herald's portal: the little script the pages use. Everything works without it except the
// automatic sign-in from a link (the key can be pasted instead) and the copy buttons.
"use strict";

// The entry page: take the key from the link's fragment (never sent to the server in the
// address), remove it from the address bar and history, and sign in with it.
(function enter() {
  var form = document.getElementById("portal-entry");
  if (!form) return;
  var match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname);
    document.getElementById("key").value = decodeURIComponent(match[1]);
    form.submit();
  } else if (form.dataset.continue) {
    location.replace(form.dataset.continue);
  }
})();

// Copy buttons: `data-copy` names the element whose text to copy.
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.dataset.copy);
  var status = button.parentElement.querySelector(".copied");
  var text = source ? source.textContent.trim() : "";
  function done(message) { if (status) status.textContent = message; }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(function () { done("Copied"); }, function () { done("Copy failed: select the text"); });
  } else {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    done(document.execCommand && document.execCommand("copy") ? "Copied" : "Selected: press Ctrl+C");
  }
});

// Fields holding JSON are checked in the browser before the form is sent; the server checks
// everything again.
function checkJson(area) {
  var text = area.value.trim();
  var message = "";
  if (text) {
    try { JSON.parse(text); } catch (e) { message = "Not valid JSON: " + e.message; }
  }
  area.setCustomValidity(message);
  return message === "";
}
document.addEventListener("input", function (event) {
  if (event.target.matches("textarea[data-json]")) checkJson(event.target);
});
document.addEventListener("submit", function (event) {
  var areas = event.target.querySelectorAll("textarea[data-json]");
  for (var i = 0; i < areas.length; i++) {
    if (!checkJson(areas[i])) {
      event.preventDefault();
      areas[i].reportValidity();
      return;
    }
  }
}, true);
