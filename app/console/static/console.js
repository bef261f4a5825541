// The console's live parts, without a build step or a library: the executions list refreshes
// its rows while open; an execution's page follows its event stream (EventSource resumes with
// Last-Event-ID by itself) and grows its trace.
"use strict";

(function () {
  var TERMINAL = { finished: true, failed: true };

  function refreshRows(tbody) {
    var url = tbody.getAttribute("data-live-rows");
    setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null || html === tbody.dataset.lastHtml) return;
          tbody.dataset.lastHtml = html;
          tbody.innerHTML = html;
        })
        .catch(function () {});
    }, 3000);
  }

  function pad(number) { return (number < 10 ? "0" : "") + number; }

  function clock(iso) {
    var when = new Date(iso);
    return pad(when.getUTCHours()) + ":" + pad(when.getUTCMinutes()) + ":" + pad(when.getUTCSeconds());
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function traceEntry(message) {
    var item = element("li", "entry entry-" + message.role);
    item.setAttribute("data-message-id", String(message.id));
    var head = element("div", "entry-head");
    head.appendChild(element("span", "role", message.role.replace(/_/g, " ")));
    if (message.tool_name) head.appendChild(element("code", "tool", message.tool_name));
    var time = element("time", null, clock(message.created_at));
    time.setAttribute("datetime", message.created_at);
    head.appendChild(time);
    item.appendChild(head);
    if (message.content) item.appendChild(element("pre", "content", message.content));
    if (message.payload) {
      var details = element("details");
      details.appendChild(element("summary", null, "Payload"));
      details.appendChild(element("pre", null, JSON.stringify(message.payload, null, 2)));
      item.appendChild(details);
    }
    return item;
  }

  function moment(iso) {
    if (!iso) return "—";
    var when = new Date(iso);
    return when.getUTCFullYear() + "-" + pad(when.getUTCMonth() + 1) + "-" + pad(when.getUTCDate()) +
      " " + clock(iso) + " UTC";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + Math.floor(seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function showStatus(section, execution) {
    function field(name) { return section.querySelector('[data-field="' + name + '"]'); }
    var badge = field("status");
    badge.textContent = execution.status.replace(/_/g, " ");
    badge.className = "badge badge-" + execution.status;
    section.setAttribute("data-status", execution.status);
    field("finished_at").textContent = moment(execution.finished_at);
    field("duration").textContent = duration(execution.duration_seconds);
    var usage = field("usage");
    if (usage && execution.usage) {
      usage.textContent = execution.usage.requests + " requests · " + execution.usage.input_tokens +
        " in / " + execution.usage.output_tokens + " out tokens" +
        (execution.usage.cost === null ? "" : " · $" + execution.usage.cost.toFixed(4));
    }
    field("result").textContent =
      execution.result === null ? "—" : JSON.stringify(execution.result, null, 2);
    if (execution.failure_code) {
      field("failure_code").textContent = execution.failure_code;
      field("failure_explanation").textContent = execution.failure_explanation || "";
      field("failure").hidden = false;
    }
    if (TERMINAL[execution.status]) {
      field("live").textContent = "The run has ended.";
      var hidden = document.querySelectorAll("[data-hide-when-terminal]");
      for (var i = 0; i < hidden.length; i++) hidden[i].hidden = true;
      var shown = document.querySelectorAll("[data-show-when-terminal]");
      for (var j = 0; j < shown.length; j++) shown[j].hidden = false;
    }
  }

  function follow(trace) {
    var section = document.querySelector("[data-execution]");
    var stream = new EventSource(trace.getAttribute("data-event-stream"));
    stream.addEventListener("trace", function (event) {
      var message = JSON.parse(event.data);
      // The page may already show it (written between the page's read and the stream's).
      if (trace.querySelector('[data-message-id="' + message.id + '"]')) return;
      trace.appendChild(traceEntry(message));
    });
    stream.addEventListener("status", function (event) {
      var execution = JSON.parse(event.data);
      showStatus(section, execution);
      if (TERMINAL[execution.status]) stream.close();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var rows = document.querySelector("[data-live-rows]");
    if (rows) refreshRows(rows);
    var trace = document.querySelector("[data-event-stream]");
    if (trace) follow(trace);
  });
})();
