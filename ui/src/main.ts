import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';
import { engine } from './lib/engine.svelte';

mount(App, { target: document.getElementById('app')! });
void engine.start();
