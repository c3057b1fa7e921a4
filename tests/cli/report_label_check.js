// Injected into a copy of an `analyze report` page by analyze_test.cpp and run
// by headless Chromium (--dump-dom): every <text> of every chart must lie inside
// its <svg> as laid out, so no label is cut at the edge of a chart. The verdict
// goes into a pre element with the id label-check, appended to the body, which
// the test reads from the dumped DOM.
window.addEventListener("load", () => {
  const clipped = [];
  let labels = 0;
  for (const svg of document.querySelectorAll("svg")) {
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll("text")) {
      const r = t.getBoundingClientRect();
      ++labels;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 ||
          r.bottom > box.bottom + 0.5)
        clipped.push(`${svg.getAttribute("aria-label")}: ${t.textContent}`);
    }
  }
  const out = document.createElement("pre");
  out.id = "label-check";
  out.textContent = `labels ${labels} clipped ${clipped.length}\n${clipped.join("\n")}`;
  document.body.appendChild(out);
});
