// WebKitGTK reports the C/POSIX locale as the language "C", which Intl
// refuses ("invalid language tag"); uPlot builds an Intl.NumberFormat of
// navigator.language when it loads. Imported before uPlot: a language
// Intl refuses reads as en-US.
export function usableLanguage(lang: string): string {
  try {
    new Intl.NumberFormat(lang);
    return lang;
  } catch {
    return 'en-US';
  }
}

if (typeof navigator !== 'undefined' && usableLanguage(navigator.language) !== navigator.language) {
  Object.defineProperty(navigator, 'language', { get: () => 'en-US', configurable: true });
}
