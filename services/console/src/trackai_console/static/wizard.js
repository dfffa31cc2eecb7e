// The wizard's "Copiar" buttons: copy the text of the element named by data-copy. Delegated on
// the document, so buttons inside fragments htmx swaps in work too.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = "Copiado!";
  } catch (_) {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selecionado: tecle Ctrl+C";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});
