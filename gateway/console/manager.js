// The store manager's screens: the geofence map, stores, offers and the decision preview.
// A reviewer gets the read-only views (no edit controls); the API refuses forged writes anyway.
import { geofencesScreen } from "./geofences.js";
import { journeysScreen } from "./journeys.js";
import { offerFormScreen } from "./offerform.js";
import { offersScreen } from "./offers.js";
import { previewScreen } from "./preview.js";
import { storesScreen } from "./stores.js";

export function register({ route, whoami }) {
  route("#/geofences", (params, main) => geofencesScreen(params, main, whoami));
  route("#/stores", (params, main) => storesScreen(params, main, whoami));
  route("#/stores/:id", (params, main) => storesScreen(params, main, whoami));
  route("#/preview", (params, main) => previewScreen(params, main));
  route("#/offers", (params, main) => offersScreen(params, main, whoami));
  route("#/offers/new", (params, main) => offerFormScreen(params, main, whoami));
  route("#/offers/:id", (params, main) => offerFormScreen(params, main, whoami));
  route("#/journeys", (params, main) => journeysScreen(params, main, whoami));
}
