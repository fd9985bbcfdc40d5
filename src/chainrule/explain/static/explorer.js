// chainrule explorer: steps through a trace that Python recorded (forward, then backward).
// It computes nothing itself: every number and formula comes from the embedded JSON.
(function () {
  "use strict";

  var server = document.body.getAttribute("data-mode") === "server";
  var token = document.body.getAttribute("data-token") || ""; // the server's secret: it answers only its page
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var steps = [];
  var index = 0;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  // --- the skeleton ---------------------------------------------------------------------
  var header = el("header");
  var title = el("h1", { id: "title" });
  var parsed = el("div", { cls: "parsed", id: "parsed" });
  var notes = el("ul", { cls: "notes", id: "notes" });
  header.appendChild(title);
  var exprBox, valuesBox, errorBox;
  if (server) {
    exprBox = el("input", { id: "expr", type: "text", spellcheck: "false", "aria-label": "expression" });
    valuesBox = el("input", { id: "values", type: "text", spellcheck: "false", "aria-label": "values" });
    var form = el("form", { id: "ask" }, [
      el("label", { "for": "expr", text: "f =" }), exprBox,
      el("label", { "for": "values", text: "at" }), valuesBox,
      el("button", { type: "submit", id: "go", text: "Explain" }),
    ]);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); ask(); });
    header.appendChild(form);
    errorBox = el("div", { id: "error", role: "alert" });
    header.appendChild(errorBox);
  }
  header.appendChild(parsed);
  header.appendChild(notes);
  document.body.appendChild(header);

  var graph = el("div", { id: "graph" });
  var prev = el("button", { id: "prev", type: "button", text: "← previous", title: "previous step (←)" });
  var next = el("button", { id: "next", type: "button", text: "next →", title: "next step (→)" });
  var restart = el("button", { id: "restart", type: "button", text: "start", title: "first step (Home)" });
  var counter = el("span", { id: "counter" });
  var phase = el("div", { id: "phase" });
  var stepBox = el("div", { id: "step", "aria-live": "polite" });
  var panel = el("aside", { id: "panel" }, [
    el("div", { cls: "controls" }, [restart, prev, next, counter]),
    phase, stepBox,
    el("div", { cls: "hint", text: "Keys: → next step, ← previous step. Forward values in green, gradients in red." }),
  ]);
  document.body.appendChild(el("main", {}, [graph, panel]));
  var below = el("section", { cls: "below" });
  document.body.appendChild(below);

  prev.addEventListener("click", function () { go(index - 1); });
  next.addEventListener("click", function () { go(index + 1); });
  restart.addEventListener("click", function () { go(0); });
  document.addEventListener("keydown", function (ev) {
    if (ev.target && ev.target.tagName === "INPUT") return; // arrows move the caret in the text boxes
    if (ev.key === "ArrowRight") { go(index + 1); ev.preventDefault(); }
    else if (ev.key === "ArrowLeft") { go(index - 1); ev.preventDefault(); }
    else if (ev.key === "Home") { go(0); ev.preventDefault(); }
  });

  // --- the graph --------------------------------------------------------------------------
  var nodes = {}; // label -> <g class="node">
  var edges = []; // {from, to, g}

  function titleOf(g) {
    var t = g.querySelector("title");
    return t ? t.textContent : "";
  }

  function showGraph() {
    nodes = {};
    edges = [];
    graph.textContent = "";
    if (!data.svg) {
      graph.appendChild(el("p", { cls: "nograph", text: "No drawing: " + (data.svg_error || "no renderer") }));
      return;
    }
    // The SVG was produced by Graphviz from our own DOT (labels escaped there), inserted as markup.
    var holder = document.createElement("div");
    holder.innerHTML = data.svg;
    var svg = holder.querySelector("svg");
    graph.appendChild(svg);
    // Fit the drawing to its box, but never shrink it below 65% of its natural size: labels stay
    // readable and a wide graph scrolls sideways instead.
    var natural = parseFloat(svg.getAttribute("width") || "0") * (4 / 3); // Graphviz gives points
    var room = graph.clientWidth - 16;
    if (natural > 0 && room > 0) svg.style.width = Math.max(Math.min(natural, room), natural * 0.65) + "px";
    svg.querySelectorAll("g.node").forEach(function (g) { nodes[titleOf(g)] = g; });
    svg.querySelectorAll("g.edge").forEach(function (g) {
      var parts = titleOf(g).split("->");
      if (parts.length === 2) edges.push({ from: parts[0], to: parts[1], g: g });
    });
  }

  function highlight(step) {
    Object.keys(nodes).forEach(function (k) { nodes[k].classList.remove("current", "todo"); });
    edges.forEach(function (e) { e.g.classList.remove("current-fwd", "current-bwd", "todo"); });
    var g = nodes[step.node];
    if (g) {
      g.classList.add("current");
      // a wide drawing scrolls sideways: keep the current node in view (never scrolling the page itself)
      var box = g.getBoundingClientRect(), view = graph.getBoundingClientRect();
      if (box.left < view.left || box.right > view.right) {
        graph.scrollLeft += box.left - view.left - (view.width - box.width) / 2;
      }
    }
    if (step.phase === "forward") {
      var seen = {};
      for (var i = 0; i <= index; i++) seen[steps[i].node] = true;
      Object.keys(nodes).forEach(function (k) {
        if (!seen[k] && k.indexOf(" (output)") < 0 && k.indexOf("const ") !== 0) nodes[k].classList.add("todo");
      });
      edges.forEach(function (e) {
        if (e.to === step.node) e.g.classList.add("current-fwd");
        if (!seen[e.from] && e.from.indexOf("const ") !== 0) e.g.classList.add("todo"); // value not computed yet
      });
    } else {
      edges.forEach(function (e) { if (e.to === step.node) e.g.classList.add("current-bwd"); });
    }
    // Gradients (red) appear in the drawing as the backward pass computes them: an edge's when the node it
    // enters has run its step, an input's when its last step has run, a fan-out sum at its node's step.
    var done = step.phase === "backward" ? index - data.forward.length : -1;
    var stepOf = {};
    data.backward.forEach(function (b, k) { stepOf[b.node] = k; });
    var finalOf = {};
    data.leaves.forEach(function (l) { finalOf[l.label] = l.final_step; });
    function showRed(g, shown) {
      g.querySelectorAll('text[fill="#cf222e"]').forEach(function (t) { t.style.visibility = shown ? "" : "hidden"; });
    }
    edges.forEach(function (e) {
      var k = stepOf[e.to];
      showRed(e.g, done >= 0 && (k === undefined || k <= done));
    });
    Object.keys(nodes).forEach(function (label) {
      var k = label in finalOf ? finalOf[label] : stepOf[label];
      showRed(nodes[label], done >= 0 && (k === undefined || k <= done));
    });
  }

  // --- one step ---------------------------------------------------------------------------
  function heatmap(jac, label) {
    var max = 0;
    jac.entries.forEach(function (row) {
      row.forEach(function (v) { if (v !== null) max = Math.max(max, Math.abs(v)); });
    });
    var table = el("table", { cls: "heat", "aria-label": label || "local Jacobian" });
    jac.entries.forEach(function (row, r) {
      var tr = el("tr");
      row.forEach(function (v, c) {
        var a = max > 0 && v !== null ? Math.abs(v) / max : 0;
        var color = v === null ? "#bbb" // nan or inf
          : v >= 0 ? "rgba(207,34,46," + a.toFixed(3) + ")" : "rgba(9,105,218," + a.toFixed(3) + ")";
        tr.appendChild(el("td", { style: "background:" + color, title: "[" + r + "," + c + "] = " + jac.text[r][c] }));
      });
      table.appendChild(tr);
    });
    return table;
  }

  function showForward(s) {
    stepBox.appendChild(el("div", {
      cls: "mono", text: s.kind === "input" ? "input " + s.node + " (" + s.shape + ")" : "compute " + s.node,
    }));
    s.lines.forEach(function (line) { stepBox.appendChild(el("div", { cls: "line fwd-line", text: line })); });
    if (s.shapes) stepBox.appendChild(el("div", { cls: "words", text: s.shapes }));
  }

  function showBackward(s) {
    stepBox.appendChild(el("div", { cls: "line", text: s.expression }));
    stepBox.appendChild(el("div", { cls: "line upstream", text: "upstream: " + s.upstream_line }));
    if (s.branches.length) {
      var sum = s.branches.map(function (b) { return b.grad + " (from " + b.from + ")"; }).join(" + ");
      stepBox.appendChild(el("div", {
        cls: "branches mono", text: "fan-out: the upstream gradient is the sum of its branches: " + sum + " = " + s.upstream,
      }));
    }
    s.inputs.forEach(function (inp) {
      var box = el("div", { cls: "input" });
      var who = "to " + inp.label + " = " + inp.value + (inp.shape ? "  (length " + inp.shape + ")" : "");
      box.appendChild(el("div", { cls: "who", text: who }));
      var formula;
      if (inp.local) { // elementwise: one local derivative per element
        formula = "local gradient ∂" + s.node + "/∂" + inp.label + " = " + inp.formula;
        if (inp.local !== inp.formula) formula += " = " + inp.local;
      } else { // the rule that maps the upstream gradient g to this input's gradient
        formula = "rule: d" + data.output + "/d" + inp.label + " = " + inp.formula;
      }
      box.appendChild(el("div", { cls: "formula", text: formula }));
      box.appendChild(el("div", { cls: "calc", text: inp.line }));
      box.appendChild(el("div", { cls: "words", text: inp.words }));
      if (inp.jacobian) {
        var j = inp.jacobian;
        box.appendChild(el("div", {
          cls: "jac", text: "local Jacobian " + j.rows + "×" + j.cols + ": " + j.structure,
        }));
        if (j.entries) {
          box.appendChild(heatmap(j));
          box.appendChild(el("div", {
            cls: "words", text: "rows: elements of " + s.node + ", columns: elements of " + inp.label +
              " (red positive, blue negative, white zero; hover for the numbers)",
          }));
        }
      }
      stepBox.appendChild(box);
    });
  }

  // A gradient is shown once the backward pass has finished it (its last step), never before.
  var gradientLines = [];
  function revealGradients(s) {
    var done = s.phase === "backward" ? index - data.forward.length : -1; // backward steps completed, 0-based
    gradientLines.forEach(function (g) {
      var ready = g.leaf.final_step >= 0 && done >= g.leaf.final_step;
      g.line.textContent = ready ? g.text
        : "d" + data.output + "/d" + g.leaf.label + " = ?   (found in the backward pass, step " +
          (data.forward.length + g.leaf.final_step + 1) + ")";
      g.line.classList.toggle("pending", !ready);
    });
  }

  function go(i) {
    if (!steps.length) return;
    index = Math.max(0, Math.min(steps.length - 1, i));
    var s = steps[index];
    stepBox.textContent = "";
    phase.className = s.phase;
    graph.className = s.phase; // the forward pass hides the gradients (red) the backward pass will fill in
    phase.textContent = s.phase === "forward" ? "forward pass" : "backward pass";
    counter.textContent = "step " + (index + 1) + " of " + steps.length;
    if (s.phase === "forward") showForward(s); else showBackward(s);
    prev.disabled = index === 0;
    next.disabled = index === steps.length - 1;
    highlight(s);
    revealGradients(s);
  }

  // --- the whole page ---------------------------------------------------------------------
  function show() {
    title.textContent = data.title + "   →   " + data.output + " = " + data.value;
    parsed.textContent = data.parsed ? "parsed as f = " + data.parsed : "";
    notes.textContent = "";
    data.notes.forEach(function (n) { notes.appendChild(el("li", { text: n })); });
    if (server && document.activeElement !== exprBox) {
      exprBox.value = data.typed;
      valuesBox.value = data.values_text;
    }
    showGraph();
    steps = data.forward.map(function (s) { return Object.assign({ phase: "forward" }, s); })
      .concat(data.backward.map(function (s) { return Object.assign({ phase: "backward" }, s); }));
    below.textContent = "";
    var leaves = el("div", { id: "gradients" });
    gradientLines = [];
    data.leaves.forEach(function (l) {
      var text = "d" + data.output + "/d" + l.label + " = " + l.grad;
      if (l.branches.length) {
        text += "   (" + l.branches.map(function (b) { return b.grad + " from " + b.from; }).join(" + ") + ")";
      }
      var line = el("div", { cls: "mono gradient" });
      leaves.appendChild(line);
      gradientLines.push({ line: line, text: text, leaf: l });
    });
    below.appendChild(el("h2", { text: "Gradients" }));
    below.appendChild(leaves);
    if (data.layers && data.layers.length) showLayers(data.layers);
    if (data.derive) {
      below.appendChild(el("h2", { text: "Matrix form (chainrule derive)" }));
      below.appendChild(el("pre", { cls: "derive", text: data.derive }));
    }
    if (data.chain) {
      below.appendChild(el("h2", { text: "The chain of Jacobians (derive --chain)" }));
      below.appendChild(el("pre", { cls: "derive", id: "chain", text: data.chain }));
    }
    var details = el("details", {}, [el("summary", { text: "the whole step table" })]);
    var tables = document.createElement("div");
    tables.innerHTML = data.table; // built by Python with every cell HTML-escaped
    details.appendChild(tables);
    below.appendChild(details);
    go(0);
  }

  // --- layer by layer: the matrix form of a recorded model, one equation per step ----------------------
  function grid(values, label) { // a small value or gradient as a heat map (the Jacobian heat map's colours)
    return heatmap({ entries: values.entries, text: values.text }, label);
  }

  function chainBox(chain) {
    var box = el("div", { cls: "chain", id: "layer-chain" });
    box.appendChild(el("div", { cls: "words", text: "the chain of local Jacobians along each path from the output (" +
      chain.symbol + " is " + chain.size + "):" }));
    chain.paths.forEach(function (path, k) {
      var row = el("div", { cls: "path mono" }, [el("span", { text: (k ? "+ " : chain.symbol + " = ") })]);
      path.forEach(function (f, i) {
        if (i) row.appendChild(el("span", { cls: "dot", text: " · " }));
        row.appendChild(el("span", { cls: "factor", title: f.note }, [
          el("span", { cls: "symbol", text: f.symbol }), el("sub", { cls: "size", text: f.size }),
        ]));
      });
      box.appendChild(row);
    });
    if (chain.more_paths) box.appendChild(el("div", { cls: "words", text: "+ " + chain.more_paths + " more paths" }));
    return box;
  }

  function showLayers(layers) {
    var at = 0;
    var box = el("div", { id: "layer-step", "aria-live": "polite" });
    var back = el("button", { id: "layer-prev", type: "button", text: "← previous" });
    var fwd = el("button", { id: "layer-next", type: "button", text: "next →" });
    var count = el("span", { id: "layer-counter" });
    below.appendChild(el("h2", { text: "Layer by layer (the matrix form, forward then backward)" }));
    below.appendChild(el("section", { id: "layers" }, [el("div", { cls: "controls" }, [back, fwd, count]), box]));
    function draw() {
      var s = layers[at];
      box.textContent = "";
      box.className = s.phase;
      count.textContent = (s.phase === "forward" ? "forward" : "backward") + " " + (at + 1) + " of " + layers.length;
      box.appendChild(el("div", { cls: "line equation", text: s.equation + "    (" + s.shape + ")" }));
      if (s.steps && s.steps.length) {
        var why = el("ol", { cls: "why" });
        s.steps.forEach(function (st) {
          var checked = st.error === null || st.error === undefined ? "" : "  ✓ checked, error " + st.error.toExponential(1);
          why.appendChild(el("li", {}, [
            el("span", { cls: "mono", text: st.text }),
            el("span", { cls: "reason", text: st.reason ? "  — " + st.reason : "" }),
            el("span", { cls: "checked", text: checked }),
          ]));
        });
        box.appendChild(why);
      }
      if (s.chain) box.appendChild(chainBox(s.chain));
      if (s.values) {
        box.appendChild(grid(s.values, s.phase === "forward" ? "value" : "gradient"));
        box.appendChild(el("div", { cls: "words", text: (s.phase === "forward" ? "the value of " : "the gradient ") +
          s.name + " (red positive, blue negative; hover for the numbers)" }));
      }
      back.disabled = at === 0;
      fwd.disabled = at === layers.length - 1;
    }
    back.addEventListener("click", function () { at = Math.max(0, at - 1); draw(); });
    fwd.addEventListener("click", function () { at = Math.min(layers.length - 1, at + 1); draw(); });
    draw();
  }

  // --- server mode: ask for a new explanation ---------------------------------------------
  function ask() {
    errorBox.textContent = "";
    var body = JSON.stringify({ expression: exprBox.value, values: valuesBox.value });
    fetch("/explain", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Chainrule-Token": token },
      body: body,
      credentials: "omit",
      cache: "no-store",
    })
      .then(function (r) { return r.json(); })
      .then(function (reply) {
        if (reply.ok) { data = reply.data; exprBox.blur(); show(); }
        else errorBox.textContent = reply.error;
      })
      .catch(function (err) { errorBox.textContent = "the explorer server did not answer: " + err; });
  }

  show();
})();
