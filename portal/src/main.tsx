import { createRoot } from 'react-dom/client';

import { App } from './App';
import './styles/base.css';
import './styles/layout.css';
import './styles/pages.css';

createRoot(document.getElementById('root')!).render(<App />);
