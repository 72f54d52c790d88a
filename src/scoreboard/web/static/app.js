// The live scoreboard page, built on the SDK (scoreboard.js): the SDK keeps the connection, applies the
// seq/epoch rule and the session; this file only renders, animates and announces.
import { ScoreboardClient } from "/static/scoreboard.js";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "scoreboard.session";
const client = new ScoreboardClient({ session: JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null") });
let shown = []; // the entries on screen, for diffs and announcements
let mine = null; // {score, rank} of the signed-in user
let mineRequest = 0;
let rendered = false; // the first board is not news: announce changes only after it

// --- connection state ------------------------------------------------------------------------------

const STATE_TEXT = {
  idle: "connecting…",
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline — waiting for the network",
  closed: "disconnected",
};

client.on("state", ({ state, transport, retryInMs }) => {
  const el = $("connection");
  let text = STATE_TEXT[state] ?? state;
  if (state === "live" && transport === "sse") text = "live (event stream)";
  if (state === "reconnecting" && retryInMs !== undefined) text = `reconnecting in ${Math.ceil(retryInMs / 1000)} s…`;
  el.className = `state ${state === "live" ? "live" : state === "offline" ? "offline" : "connecting"}`;
  el.dataset.state = state;
  el.textContent = text;
});

// --- the board -------------------------------------------------------------------------------------

client.onBoard((board) => {
  render(board.top);
  $("board-meta").textContent = `epoch ${board.epoch} · update ${board.seq}`;
  $("board").dataset.seq = String(board.seq);
  if (client.session) followMine(board.top);
});

// In the top 10 the board itself says where I am; outside it, ask the API — at most once per
// MINE_EVERY_MS however fast the board moves, so a thousand open pages do not become a thousand
// requests per update.
const MINE_EVERY_MS = 2000;
let mineTimer = null;
let mineLast = 0;
function followMine(top) {
  const entry = top.find((e) => e.user_id === client.session.userId);
  if (entry) {
    clearTimeout(mineTimer);
    mineTimer = null;
    mineRequest += 1; // an answer still in flight is older than this
    showMine({ score: entry.score, rank: entry.rank });
    return;
  }
  if (mineTimer) return;
  const wait = Math.max(0, mineLast + MINE_EVERY_MS - Date.now());
  mineTimer = setTimeout(() => {
    mineTimer = null;
    mineLast = Date.now();
    refreshMine();
  }, wait);
}

function row(entry) {
  const li = document.createElement("li");
  li.dataset.user = entry.user_id;
  for (const part of ["rank", "name", "score"]) {
    const span = document.createElement("span");
    span.className = part;
    li.append(span);
  }
  return li;
}

function render(top) {
  const list = $("board");
  const before = new Map([...list.children].map((li) => [li.dataset.user, li.getBoundingClientRect().top]));
  const previous = new Map(shown.map((entry) => [entry.user_id, entry]));
  const existing = new Map([...list.children].map((li) => [li.dataset.user, li]));
  const rows = top.map((entry) => {
    const li = existing.get(entry.user_id) ?? row(entry);
    li.querySelector(".rank").textContent = entry.rank;
    li.querySelector(".name").textContent = entry.display_name;
    li.querySelector(".score").textContent = entry.score.toLocaleString();
    li.classList.toggle("me", entry.user_id === client.session?.userId);
    const old = previous.get(entry.user_id);
    li.dataset.move = !old ? "new" : entry.rank < old.rank ? "up" : entry.rank > old.rank ? "down" : "";
    li.setAttribute("aria-label", `rank ${entry.rank}: ${entry.display_name}, ${entry.score} points`);
    if (old && old.score !== entry.score) flash(li);
    return li;
  });
  list.replaceChildren(...rows);
  glide(rows, before);
  announce(previous, top);
  shown = top;
  $("empty").hidden = top.length > 0;
}

// FLIP: start each moved row where it was, then let it glide to its new place.
function glide(rows, before) {
  for (const li of rows) {
    const was = before.get(li.dataset.user);
    const delta = was === undefined ? 0 : was - li.getBoundingClientRect().top;
    if (!delta) continue;
    li.style.transition = "none";
    li.style.transform = `translateY(${delta}px)`;
    requestAnimationFrame(() => {
      li.style.transition = "";
      li.style.transform = "";
    });
  }
}

function flash(li) {
  li.classList.remove("changed");
  void li.offsetWidth; // restart the animation
  li.classList.add("changed");
}

function announce(previous, top) {
  if (!rendered) {
    rendered = true;
    return;
  }
  const messages = [];
  const leader = top[0];
  if (leader && shown[0]?.user_id !== leader.user_id) messages.push(`${leader.display_name} takes the lead with ${leader.score}.`);
  for (const entry of top) {
    if (entry === leader) continue;
    const old = previous.get(entry.user_id);
    if (!old) messages.push(`${entry.display_name} enters the top 10 at rank ${entry.rank}.`);
    else if (entry.rank < old.rank) messages.push(`${entry.display_name} moves up to rank ${entry.rank}.`);
  }
  if (messages.length) $("announcer").textContent = messages.slice(0, 3).join(" ");
}

// --- the signed-in user --------------------------------------------------------------------------

client.on("session", (session) => {
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
  showSession();
});

function showSession() {
  const session = client.session;
  $("auth-form").hidden = session !== null;
  $("session").hidden = session === null;
  $("you").hidden = session === null;
  for (const li of $("board").children) li.classList.toggle("me", li.dataset.user === session?.userId);
  if (!session) {
    mine = null;
    return;
  }
  $("me").textContent = session.username;
  refreshMine();
}

// My score and rank come from GET /api/users/{id}/score, so they show even outside the top 10.
async function refreshMine() {
  const request = ++mineRequest;
  try {
    const score = await client.userScore();
    if (request === mineRequest) showMine(score);
  } catch (error) {
    if (error.status === 404) client.setSession(null);
  }
}

function showMine({ score, rank }) {
  if (mine && rank !== null && mine.rank !== rank) {
    const way = mine.rank === null || rank < mine.rank ? "up" : "down";
    $("announcer").textContent = `You moved ${way} to rank ${rank}.`;
  }
  mine = { score, rank };
  $("my-score").textContent = score.toLocaleString();
  $("my-unit").textContent = score === 1 ? "point" : "points";
  $("my-rank").textContent = rank ?? "–";
}

function say(text) {
  $("message").textContent = text;
}

async function credentials(kind) {
  const username = $("username").value.trim();
  const password = $("password").value;
  try {
    if (kind === "register") await client.register(username, password);
    await client.login(username, password);
    say(kind === "register" ? "Welcome! Complete an action to score." : "");
    $("complete").focus();
  } catch (error) {
    say(error.message);
  }
}

async function completeAction() {
  const button = $("complete");
  button.disabled = true;
  try {
    const ticket = await client.requestAction("default");
    const result = await client.completeAction(ticket.action_id);
    showMine({ score: result.new_score, rank: result.rank ?? mine?.rank ?? null });
    say(`+${ticket.points} — your score is ${result.new_score}`);
  } catch (error) {
    say(error.message);
  } finally {
    button.disabled = false;
    button.focus();
  }
}

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  credentials("login");
});
$("register").addEventListener("click", () => $("auth-form").reportValidity() && credentials("register"));
$("complete").addEventListener("click", completeAction);
$("logout").addEventListener("click", async () => {
  await client.logout().catch(() => {});
  say("Signed out.");
  $("username").focus();
});
showSession();
