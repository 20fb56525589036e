// The page: pick a task, type or draw a puzzle, watch the answer after every ACT step.
// No framework, no build step, no network beyond this server.
"use strict";
const $ = (id) => document.getElementById(id);
const STEP_DELAY_MS = 380; // steps arrive within milliseconds: show each long enough to be seen
const RETRY_STEP_DELAY_MS = 140; // a later attempt's steps (thinking harder may take dozens)
let model = null; // GET /v1/model: the (first) model; with several, `models` holds each and `tasks` all of theirs
let solution = null; // known solution of a drawn test puzzle (text or rows), for marking wrong cells

const KEY_ITEM = "hrm-eval-key";

function authHeaders() {
  const key = $("apikey").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

// The key is kept for this tab only (sessionStorage, gone when it closes) and only once the server
// has accepted it: a mistyped key is never stored, and a rejected one is forgotten.
function rememberKey(response) {
  const key = $("apikey").value.trim();
  if (response.ok && key) sessionStorage.setItem(KEY_ITEM, key);
  if (response.status === 401) sessionStorage.removeItem(KEY_ITEM);
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  rememberKey(response);
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).error; } catch (e) { /* not JSON */ }
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  return response;
}

function showError(message) { $("error").textContent = message || ""; }

async function loadModel() {
  try {
    model = await (await api("/v1/model")).json();
  } catch (e) {
    if (e.status === 401) { $("keybox").open = true; $("apikey").focus(); }
    showError(e.message + (e.status === 401 ? " (enter the API key below)" : ""));
    $("model").textContent = "not connected";
    return;
  }
  showError("");
  $("model").textContent = (model.models || [model])
    .map((m) => `${m.name} · ${m.variant} · ${m.dtype} · halting ${m.halting.mode}`).join("  +  ");
  const select = $("task");
  select.innerHTML = "";
  for (const t of model.tasks) select.add(new Option(`${t.name} (${t.seq_len} cells)`, t.name));
  if (!model.tasks.length) select.add(new Option("token ids", ""));
  taskChosen();
  if (!$("board").children.length) renderBoard(null, emptyBoard(), null); // the board before any puzzle
}

// The model that answers a task (several models are served one per task; else the one).
function modelOf(taskName) {
  return (model.models || []).find((m) => m.tasks.some((t) => t.name === taskName)) || model;
}

// What depends on the chosen task's model: its random puzzles and its "think harder" budgets.
function taskChosen() {
  $("random").disabled = !modelOf($("task").value).random_puzzles;
  budgetChoices();
}

// Several models: a typed text puzzle with as many cells as another task's board picks that task
// (an 81-cell Sudoku goes to the 9x9 model without touching the task list).
function taskBySize() {
  if (!model || !model.models) return;
  const cells = $("puzzle").value.replace(/\s/g, "").length;
  if (layoutOf($("task").value).seq_len === cells) return;
  const fit = model.tasks.find((t) => t.n && t.seq_len === cells);
  if (fit) { $("task").value = fit.name; taskChosen(); }
}

// "Think harder": budgets of 2, 4 and 8 times the halting limit, up to the server's max_budget
// (GET /v1/model); the server's default (--scaling verify --budget N) preselected.
function budgetChoices() {
  const chosen = modelOf($("task").value);
  const select = $("budget"), scaling = chosen.scaling;
  select.length = 1;
  if (!scaling) { select.disabled = true; return; }
  const limit = chosen.halting.max_steps;
  const budgets = new Set([2, 4, 8].map((k) => k * limit).filter((b) => b <= scaling.max_budget));
  budgets.add(scaling.max_budget);
  if (scaling.budget) budgets.add(scaling.budget);
  for (const b of [...budgets].sort((x, y) => x - y)) select.add(new Option(`yes: up to ${b} ACT steps`, String(b)));
  select.value = String(scaling.budget || 0);
}

// A board of blanks in the selected task's shape (text tasks: one "." per cell).
function emptyBoard() {
  const layout = layoutOf($("task").value);
  const side = layout.n || Math.round(Math.sqrt(layout.seq_len || 0));
  return side ? cellsOf(".".repeat(side * side)) : null;
}

// Everything a previous answer left on the page: steps, summary, verdict (and the board's answer).
function clearAnswer(board) {
  $("steps").innerHTML = "";
  delete $("steps").dataset.attempt;
  $("summary").textContent = "";
  $("verdict").textContent = "";
  $("verdict").className = "verdict";
  if (board) renderBoard(null, board, null);
}

function layoutOf(taskName) {
  return (model && model.tasks.find((t) => t.name === taskName)) || {};
}

// A text answer is one character per cell of a square board; a grid answer is rows of colours.
function cellsOf(value) {
  if (value == null) return null;
  if (typeof value === "string") {
    const side = Math.round(Math.sqrt(value.length));
    return { side, rows: side, cols: side, values: [...value] };
  }
  const rows = value.length, cols = rows ? value[0].length : 0;
  return { side: Math.max(rows, cols), rows, cols, values: value.flat().map(String), colours: true };
}

function rulesBroken(values, puzzle, layout) {
  // Boards with boxes (Sudoku-like): a digit twice in a row, column or box, or a given changed.
  const bad = new Set();
  const n = layout.n, br = layout.box_rows, bc = layout.box_cols;
  if (!n || !br || !bc || values.length !== n * n) return bad;
  const groups = [];
  for (let i = 0; i < n; i++) {
    groups.push([...Array(n).keys()].map((j) => i * n + j));
    groups.push([...Array(n).keys()].map((j) => j * n + i));
  }
  for (let r0 = 0; r0 < n; r0 += br)
    for (let c0 = 0; c0 < n; c0 += bc) {
      const box = [];
      for (let r = r0; r < r0 + br; r++) for (let c = c0; c < c0 + bc; c++) box.push(r * n + c);
      groups.push(box);
    }
  for (const g of groups) {
    const seen = {};
    for (const i of g) if (values[i] !== ".") (seen[values[i]] = seen[values[i]] || []).push(i);
    for (const cells of Object.values(seen)) if (cells.length > 1) cells.forEach((i) => bad.add(i));
  }
  if (puzzle) puzzle.values.forEach((v, i) => { if (v !== "." && v !== values[i]) bad.add(i); });
  return bad;
}

function renderBoard(answer, puzzle, previous) {
  const board = $("board");
  const layout = layoutOf($("task").value);
  const shown = cellsOf(answer) || puzzle;
  if (!shown) { board.innerHTML = ""; return; }
  const known = cellsOf(solution);
  const clash = answer ? rulesBroken(shown.values, puzzle, layout) : new Set();
  board.style.gridTemplateColumns = `repeat(${shown.cols}, 1fr)`;
  board.style.gridTemplateRows = `repeat(${shown.rows}, 1fr)`;
  board.innerHTML = "";
  shown.values.forEach((v, i) => {
    const cell = document.createElement("div");
    const r = Math.floor(i / shown.cols), c = i % shown.cols;
    cell.className = "cell";
    if (shown.colours) cell.classList.add("arc" + v);
    else cell.textContent = v === "." ? "" : v;
    const given = puzzle && puzzle.values[i] !== "." && puzzle.values[i] === v;
    if (v !== ".") cell.classList.add(given || !answer ? "given" : "filled"); // a blank stays white
    if (answer && known && known.values[i] !== undefined && known.values[i] !== v) cell.classList.add("wrong");
    if (clash.has(i)) cell.classList.add("clash");
    if (previous && previous.values[i] !== v) cell.classList.add("changed");
    if (layout.box_cols && (c + 1) % layout.box_cols === 0 && c + 1 < shown.cols) cell.classList.add("box-right");
    if (layout.box_rows && (r + 1) % layout.box_rows === 0 && r + 1 < shown.rows) cell.classList.add("box-bottom");
    board.appendChild(cell);
  });
  board.dataset.answer = answer == null ? "" : (typeof answer === "string" ? answer : JSON.stringify(answer));
}

function addStep(event, final) {
  const li = document.createElement("li");
  const p = event.q_halt_probability;
  const steps = $("steps");
  if (event.attempt && event.attempt > 1 && steps.dataset.attempt !== String(event.attempt)) {
    const head = document.createElement("li"); // where a new attempt (a rearranged copy) starts
    head.className = "attempt";
    head.textContent = `attempt ${event.attempt}: the puzzle rearranged, thinking again`;
    steps.appendChild(head);
  }
  if (event.attempt) steps.dataset.attempt = String(event.attempt);
  li.innerHTML = `<span>step ${event.step ?? event.steps}</span><span class="bar"><i style="width:${(p * 100).toFixed(1)}%"></i></span><span>${(p * 100).toFixed(1)}%</span>`;
  if (final) li.className = "final";
  steps.appendChild(li);
  steps.scrollTop = steps.scrollHeight; // thinking harder makes a long list: keep the newest step in view
}

function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

// Server-sent events over fetch (so the API key can go in a header): yields {event, data}.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = (block.match(/^event: (.*)$/m) || [])[1];
      const data = (block.match(/^data: (.*)$/m) || [])[1];
      if (event && data) yield { event, data: JSON.parse(data) };
    }
  }
}

async function solve() {
  showError("");
  clearAnswer(null);
  const body = { puzzle: $("puzzle").value };
  if ($("task").value) body.task = $("task").value;
  if (!$("budget").disabled) body.budget = Number($("budget").value); // 0: no scaling
  $("solve").disabled = true;
  let puzzle = null, previous = null;
  try {
    const response = await api("/v1/solve/stream", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    for await (const { event, data } of events(response)) {
      if (event === "puzzle") {
        puzzle = cellsOf(data.answer ?? data.grid);
        renderBoard(null, puzzle, null);
      } else if (event === "step") {
        await sleep(data.attempt > 1 ? RETRY_STEP_DELAY_MS : STEP_DELAY_MS);
        const answer = data.answer ?? data.grid;
        renderBoard(answer, puzzle, previous);
        previous = cellsOf(answer);
        addStep(data, false);
      } else if (event === "final") {
        finish(data, puzzle);
      } else if (event === "error") {
        showError(`${data.status}: ${data.error}`);
        clearAnswer(puzzle || emptyBoard());
      }
    }
  } catch (e) {
    showError(e.message);
    clearAnswer(puzzle || emptyBoard()); // no answer of an earlier puzzle stays beside this error
  } finally {
    $("solve").disabled = false;
  }
}

function finish(data, puzzle) {
  renderBoard(data.answer ?? data.grid, puzzle, null);
  const last = $("steps").lastElementChild;
  if (last) last.className = "final";
  const verdict = $("verdict");
  verdict.textContent = (data.verified ? "verified" : "not verified") + attemptsText(data);
  verdict.className = "verdict " + (data.verified ? "ok" : "bad");
  const known = cellsOf(solution), got = cellsOf(data.answer ?? data.grid);
  const wrong = known && got ? got.values.filter((v, i) => v !== known.values[i]).length : null;
  $("summary").textContent =
    `${data.steps} ACT step${data.steps === 1 ? "" : "s"}` + (data.solved_at_attempt ? ` in attempt ${data.solved_at_attempt}` : "") +
    ` · ${(data.q_halt_probability * 100).toFixed(1)}% confident` +
    ` · ${data.latency_ms.toFixed(0)} ms in the server` +
    (wrong === null ? "" : ` · ${wrong} cell${wrong === 1 ? "" : "s"} differ from the known solution`) +
    ` · answered by ${data.model}` + (data.verified ? ` (checked by the ${data.task} rules)` : "") +
    (data.attempts ? ` · ${data.act_steps_total} of a budget of ${data.budget} ACT steps over ${plural(data.attempts, "attempt")},` +
      ` the answer chosen by ${data.selected_by === "verified" ? "the rule check" : data.selected_by === "vote" ? "a vote of the attempts" : "the model's confidence"}` : "");
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// With a budget: which attempt found the answer and what all attempts cost (plain answers: nothing).
function attemptsText(data) {
  if (!data.attempts) return "";
  const cost = plural(data.act_steps_total, "ACT step");
  return data.solved_at_attempt
    ? ` · found by attempt ${data.solved_at_attempt}, ${cost}`
    : ` after ${plural(data.attempts, "attempt")}, ${cost}`;
}

async function randomPuzzle() {
  showError("");
  try {
    const query = model.models ? "?task=" + encodeURIComponent($("task").value) : ""; // several models: the chosen task's
    const p = await (await api("/v1/puzzles/random" + query)).json();
    const layout = layoutOf(p.task);
    // one board row per line reads better; the server ignores the line breaks
    $("puzzle").value = typeof p.puzzle === "string" && layout.n
      ? p.puzzle.match(new RegExp(`.{1,${layout.n}}`, "g")).join("\n")
      : JSON.stringify(p.puzzle);
    solution = p.solution;
    clearAnswer(cellsOf(p.puzzle));
    $("summary").textContent = `test puzzle #${p.index}`;
  } catch (e) {
    showError(e.message);
  }
}

localStorage.removeItem(KEY_ITEM); // earlier versions kept the key there, for good
$("apikey").value = sessionStorage.getItem(KEY_ITEM) || "";
$("apikey").addEventListener("change", loadModel);
$("puzzle").addEventListener("input", () => { solution = null; taskBySize(); });
$("task").addEventListener("change", () => { taskChosen(); if (!$("board").dataset.answer) clearAnswer(emptyBoard()); });
$("solve").addEventListener("click", solve);
$("random").addEventListener("click", randomPuzzle);
loadModel();
