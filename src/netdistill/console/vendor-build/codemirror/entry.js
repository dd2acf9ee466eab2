// The console's YAML editor: CodeMirror 6 with line numbers, YAML highlighting, the
// active line, bracket matching, search and undo history. Built into one file,
// static/vendor/codemirror.bundle.js, exposing window.NDEditor (see build.sh).
import { EditorState, Compartment } from "@codemirror/state";
import { EditorView, lineNumbers, highlightActiveLine, highlightActiveLineGutter, keymap, drawSelection, highlightSpecialChars } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter, foldKeymap } from "@codemirror/language";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { yaml } from "@codemirror/lang-yaml";

function create(parent, doc, options) {
  const opts = options || {};
  const editable = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: doc || "",
      extensions: [
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(),
        drawSelection(), indentOnInput(), syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        bracketMatching(), highlightActiveLine(), highlightSelectionMatches(),
        keymap.of([...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap, indentWithTab]),
        yaml(),
        EditorState.tabSize.of(2),
        editable.of(EditorView.editable.of(!opts.readOnly)),
        EditorView.contentAttributes.of({ "aria-label": opts.label || "YAML editor", "data-testid": opts.testid || "code-editor" }),
        EditorView.updateListener.of((update) => { if (update.docChanged && opts.onChange) opts.onChange(update.state.doc.toString()); }),
      ],
    }),
  });
  return {
    view,
    get value() { return view.state.doc.toString(); },
    set value(text) { view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }); },
    setReadOnly(readOnly) { view.dispatch({ effects: editable.reconfigure(EditorView.editable.of(!readOnly)) }); },
    gotoLine(n) {
      const line = view.state.doc.line(Math.max(1, Math.min(n, view.state.doc.lines)));
      view.dispatch({ selection: { anchor: line.from }, scrollIntoView: true });
      view.focus();
    },
  };
}

window.NDEditor = { create };
