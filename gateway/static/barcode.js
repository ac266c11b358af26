// Code 128 (code set B) as an SVG, for the till's scanner: coupon codes are printable
// ASCII. Each symbol is six alternating bar and space widths in modules (the stop, seven);
// the check symbol is the start's value plus each symbol's value times its position, mod 103.

const SYMBOLS = (
  "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212 " +
  "112232 122132 122231 113222 123122 123221 223211 221132 221231 213212 223112 312131 " +
  "311222 321122 321221 312212 322112 322211 212123 212321 232121 111323 131123 131321 " +
  "112313 132113 132311 211313 231113 231311 112133 112331 132131 113123 113321 133121 " +
  "313121 211331 231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 " +
  "314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 112412 122114 " +
  "122411 142112 142211 241211 221114 413111 241112 134111 111242 121142 121241 114212 " +
  "124112 124211 411212 421112 421211 212141 214121 412121 111143 111341 131141 114113 " +
  "114311 411113 411311 113141 114131 311141 411131 211412 211214 211232 2331112"
).split(" ");
const START_B = 104;
const STOP = 106;
const QUIET = 10; // modules of white on each side

/** The symbol values of `text` in code set B, start, check and stop included. */
export function symbols(text) {
  const values = [START_B];
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (code < 32 || code > 127) throw new Error(`Code 128 B cannot encode ${JSON.stringify(ch)}`);
    values.push(code - 32);
  }
  let check = START_B;
  values.forEach((v, i) => {
    if (i > 0) check += v * i;
  });
  values.push(check % 103, STOP);
  return values;
}

/** An <svg> element drawing `text` as a Code 128 barcode, labelled for screen readers. */
export function svg(text) {
  const ns = "http://www.w3.org/2000/svg";
  const widths = symbols(text).flatMap((v) => [...SYMBOLS[v]].map(Number));
  const total = widths.reduce((a, b) => a + b, 0) + 2 * QUIET;
  const root = document.createElementNS(ns, "svg");
  root.setAttribute("viewBox", `0 0 ${total} 40`);
  root.setAttribute("preserveAspectRatio", "none");
  root.setAttribute("role", "img");
  root.setAttribute("aria-label", `Barcode of the code ${text}`);
  root.setAttribute("class", "barcode");
  root.dataset.code128 = widths.join("");
  const back = document.createElementNS(ns, "rect");
  back.setAttribute("width", String(total));
  back.setAttribute("height", "40");
  back.setAttribute("fill", "#fff");
  root.append(back);
  let x = QUIET;
  widths.forEach((w, i) => {
    if (i % 2 === 0) {
      const bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", String(x));
      bar.setAttribute("width", String(w));
      bar.setAttribute("height", "40");
      bar.setAttribute("fill", "#000");
      root.append(bar);
    }
    x += w;
  });
  return root;
}
