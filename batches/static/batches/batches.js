/* Staff pages: live progress on a batch page, and small conveniences on the failures page.
   Everything here is an enhancement: every action is also a plain form that works without JavaScript. */
(function () {
  "use strict";

  var POLL_MS = 2000;
  var RETRY_MS = 5000;

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function showMessage(text, level) {
    var box = document.getElementById("messages");
    if (!box) return;
    var list = box.querySelector("ul.messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      box.appendChild(list);
    }
    var item = document.createElement("li");
    item.className = level;
    item.textContent = text;
    list.appendChild(item);
  }

  // --- batch page: poll the progress endpoint while the batch can still change

  function setFields(data) {
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var value = data[el.dataset.field];
      el.textContent = value === null || value === undefined ? "—" : String(value);
    });
    document.querySelectorAll("[data-segment]").forEach(function (el) {
      el.style.width = (data.segments[el.dataset.segment] || 0) + "%";
    });
    document.querySelectorAll("[data-shown-if]").forEach(function (el) {
      el.hidden = !data[el.dataset.shownIf];
    });
    var bar = document.querySelector("[role=progressbar]");
    if (bar) bar.setAttribute("aria-valuenow", data.percent);
  }

  function drawErrors(errors) {
    var chart = document.getElementById("error-chart");
    var template = document.getElementById("error-row");
    if (!chart || !template) return;
    var rows = errors.map(function (bar) {
      var row = template.content.firstElementChild.cloneNode(true);
      var link = row.querySelector(".chart-label");
      link.textContent = bar.label;
      link.href = chart.dataset.failuresUrl + "?error_type=" + encodeURIComponent(bar.error_type);
      row.querySelector(".chart-bar span").style.width = bar.percent + "%";
      row.querySelector(".chart-count").textContent = String(bar.count);
      return row;
    });
    chart.replaceChildren.apply(chart, rows);
    var empty = document.getElementById("no-errors");
    if (empty) empty.hidden = errors.length > 0;
  }

  function pollProgress(panel) {
    var initial = JSON.parse(document.getElementById("progress-data").textContent);
    if (initial.finished) return;
    var url = panel.dataset.progressUrl;
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        })
        .then(function (data) {
          setFields(data);
          drawErrors(data.errors);
          if (data.status !== initial.status) {
            window.location.reload(); // the buttons on offer depend on the batch's state
          } else if (!data.finished) {
            window.setTimeout(tick, POLL_MS);
          }
        })
        .catch(function () {
          window.setTimeout(tick, RETRY_MS);
        });
    }
    window.setTimeout(tick, POLL_MS);
  }

  // --- failures page: select all, and retry one row without leaving the page

  function selectAll(box) {
    box.addEventListener("change", function () {
      box.closest("form").querySelectorAll("input[name=execution]").forEach(function (check) {
        check.checked = box.checked;
      });
    });
  }

  function retryOne(form, button) {
    var body = new FormData();
    body.append("one", button.value);
    button.disabled = true;
    fetch(form.dataset.jsonAction, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
    })
      .then(function (response) {
        return response.json().then(function (data) {
          return { ok: response.ok, data: data };
        });
      })
      .then(function (result) {
        var data = result.data;
        if (!result.ok) throw new Error(data.error || "");
        showMessage(data.message, data.retried ? "success" : "warning");
        if (data.retried) {
          button.closest("tr").classList.add("retried");
          button.textContent = button.dataset.done;
        } else {
          button.disabled = false;
        }
      })
      .catch(function (error) {
        showMessage(error.message || "Error", "error");
        button.disabled = false;
      });
  }

  function enhanceRetryForm(form) {
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button[name=one]");
      if (!button || !window.fetch) return;
      event.preventDefault();
      retryOne(form, button);
    });
  }

  // --- confirmations

  function confirmBeforeSubmit(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Bar widths come as data-width: a style attribute would need 'unsafe-inline' in the Content-Security-Policy.
  function applyWidths() {
    document.querySelectorAll("[data-width]").forEach(function (el) {
      el.style.width = el.dataset.width + "%";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    applyWidths();
    var panel = document.querySelector("[data-progress-url]");
    if (panel) pollProgress(panel);
    document.querySelectorAll("[data-select-all]").forEach(selectAll);
    document.querySelectorAll("form[data-json-action]").forEach(enhanceRetryForm);
    document.querySelectorAll("form[data-confirm]").forEach(confirmBeforeSubmit);
  });
})();

// Pages added with the results, compare and workflows pages (kept apart from the code above).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // a checkbox or select that applies its filter at once (the form also has a submit button without JavaScript)
    // a button that asks first (a whole form asks with form[data-confirm], above)
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.dataset.confirm)) event.preventDefault();
      });
    });
    document.querySelectorAll("input[data-autosubmit], select[data-autosubmit]").forEach(function (box) {
      box.addEventListener("change", function () {
        box.form.submit();
      });
    });
  });
})();
