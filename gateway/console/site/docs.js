// Renders the gateway's /openapi.json with the vendored Swagger UI. It lives in its own
// file because the pages' Content-Security-Policy allows no inline script.
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  if (typeof window.SwaggerUIBundle !== "function") {
    root.querySelector(".notice").textContent =
      "The API reference could not load; the document is at /openapi.json.";
    return;
  }
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    // No badge from validator.swagger.io: nothing here reaches outside the gateway.
    validatorUrl: null,
    // An API token given to "Authorize" stays in this page's memory, never in storage.
    persistAuthorization: false,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
